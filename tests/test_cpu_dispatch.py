"""Every CPU kernel level computes what the plain C++ reference computes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

SCRIPT = """
import json, sys
import numpy as np
import starcoder_cpp
m = starcoder_cpp.Model(sys.argv[1], n_ctx=64)
ids = list(range(100, 140))
print(json.dumps({"backend": m.info()["backend"], "logits": m.eval(ids, all_logits=True)[:, :2000].tolist()}))
"""


def run_level(path, level):
    env = dict(os.environ)
    if level:
        env["STARCODER_CPU"] = level
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(path)], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    return out["backend"], np.array(out["logits"], dtype=np.float32)


def test_forced_generic_level_is_reported_and_matches_the_best_level(tiny_gguf_f16):
    best_name, best = run_level(tiny_gguf_f16, None)
    generic_name, generic = run_level(tiny_gguf_f16, "generic")
    assert generic_name == "cpu-generic"
    assert best_name.startswith("cpu-")
    # Same math, different summation order: agreement to float rounding.
    np.testing.assert_allclose(best, generic, rtol=0, atol=2e-5 * np.abs(generic).max())
