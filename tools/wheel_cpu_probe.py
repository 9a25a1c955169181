"""What an installed wheel does on this CPU: the kernel level it picks, a
greedy completion and the logits of the bundled demo model.

    python tools/wheel_cpu_probe.py probe OUT.npz     # under qemu or natively
    python tools/wheel_cpu_probe.py compare A.npz B.npz

tools/check_wheel_cpus.sh runs `probe` natively (per forced level) and under
qemu-x86_64 -cpu X, then `compare`s the two runs of the same level with
tests/test_cpu_dispatch.py's float tolerance.
"""

from __future__ import annotations

import sys
import time

import numpy as np

PROMPT = "def fibonacci(n):"
# Same summation order everywhere: the split of work between threads is
# part of the arithmetic.
N_THREADS = 2


def probe(out: str) -> None:
    t0 = time.perf_counter()
    import starcoder_cpp
    t_import = time.perf_counter() - t0

    m = starcoder_cpp.Model("demo", n_ctx=128, n_threads=N_THREADS, kv_type="f32")
    ids = m.tokenize(PROMPT)
    prompt_rows = m.eval(ids, all_logits=True)                  # prompt path (GEMM kernels)
    steps = [m.eval([t]) for t in (284, 1524, 284)]              # decode path
    logits = np.concatenate([prompt_rows, np.stack(steps)]).astype(np.float32)
    m.reset()
    text = m.complete(PROMPT, max_tokens=12, temperature=0)
    backend = m.info()["backend"]
    np.savez(out, logits=logits, backend=backend, text=text)
    print(f"backend={backend} import_s={t_import:.2f} completion={text!r}")


def compare(a: str, b: str) -> None:
    x, y = np.load(a), np.load(b)
    if str(x["backend"]) != str(y["backend"]):
        sys.exit(f"different levels: {x['backend']} vs {y['backend']}")
    ref, got = x["logits"], y["logits"]
    err = float(np.abs(got - ref).max())
    limit = 2e-5 * float(np.abs(ref).max())
    print(f"{x['backend']}: max |logit diff| {err:.3g} (limit {limit:.3g}); "
          f"completions {'equal' if str(x['text']) == str(y['text']) else 'DIFFER'}")
    if not err < limit or str(x["text"]) != str(y["text"]):
        sys.exit(1)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "probe":
        probe(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
