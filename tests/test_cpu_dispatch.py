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
prompt = m.eval(ids, all_logits=True)[:, :2000]            # prompt path (blocked f32 kernels)
steps = [m.eval([t])[:2000] for t in range(200, 205)]      # decode path (fused kernels)
rows = np.concatenate([prompt, np.stack(steps)])
print(json.dumps({"backend": m.info()["backend"], "logits": rows.tolist()}))
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


import pytest


@pytest.mark.parametrize("fixture", ["tiny_gguf_f16", "tiny_gguf_f32"])
def test_forced_generic_level_is_reported_and_matches_the_best_level(fixture, request):
    path = request.getfixturevalue(fixture)
    best_name, best = run_level(path, None)
    generic_name, generic = run_level(path, "generic")
    assert generic_name == "cpu-generic"
    assert best_name.startswith("cpu-")
    # Same math, different summation order: agreement to float rounding.
    np.testing.assert_allclose(best, generic, rtol=0, atol=2e-5 * np.abs(generic).max())
