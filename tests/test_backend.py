"""Backend choice: Model(backend=...) and --backend, and the seam's memory ops."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import starcoder_cpp
from starcoder_cpp import _core, _testing


@pytest.fixture(scope="module")
def demo() -> str:
    return starcoder_cpp.demo_model_path()


def test_the_cpu_backend_is_the_default_and_names_its_kernel_level(demo):
    m = starcoder_cpp.Model(demo, n_ctx=64, n_threads=1)
    assert m.info()["backend"].startswith("cpu-")
    assert m.info()["backend_note"] == ""


def test_threads_are_a_cpu_backend_option_resolved_at_load(demo):
    assert starcoder_cpp.Model(demo, n_ctx=64, n_threads=2).n_threads == 2
    assert starcoder_cpp.Model(demo, n_ctx=64).n_threads >= 1


def test_an_unknown_backend_is_refused_naming_the_known_ones(demo):
    with pytest.raises(ValueError, match="cpu.*cuda.*auto"):
        starcoder_cpp.Model(demo, backend="tpu")


def test_asking_for_cuda_in_a_build_without_it_says_what_is_missing(demo):
    with pytest.raises(starcoder_cpp.BackendError, match="no CUDA backend"):
        starcoder_cpp.Model(demo, backend="cuda")


def test_auto_falls_back_to_the_cpu_and_says_why(demo):
    m = starcoder_cpp.Model(demo, n_ctx=64, n_threads=1, backend="auto")
    assert m.info()["backend"].startswith("cpu-")
    assert "auto chose cpu" in m.info()["backend_note"]


def test_auto_computes_the_same_logits_as_cpu(demo):
    ids = list(range(10, 30))
    a = starcoder_cpp.Model(demo, n_ctx=64, n_threads=1, backend="auto").eval(ids)
    b = starcoder_cpp.Model(demo, n_ctx=64, n_threads=1, backend="cpu").eval(ids)
    assert np.array_equal(a, b)


def test_cli_backend_flag_reports_a_missing_backend_in_one_line():
    r = subprocess.run([sys.executable, "-m", "starcoder_cpp", "complete", "-m", "demo", "--backend", "cuda", "x"],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "no CUDA backend" in r.stderr
    assert "Traceback" not in r.stderr


def test_last_row_of_all_logits_matches_a_last_only_eval(demo):
    # The last block runs only on the rows whose logits are wanted: with one
    # row wanted it may take the decode kernels, so equality is to rounding.
    m = starcoder_cpp.Model(demo, n_ctx=256, n_threads=1)
    ids = m.tokenize("import os\nimport sys\n\ndef main(argv):\n    for name in argv:\n")
    all_rows = m.eval(ids, all_logits=True)
    m.reset()
    last = m.eval(ids)
    np.testing.assert_allclose(last, all_rows[-1], rtol=0, atol=1e-4 * float(np.abs(last).max()))


def test_linear_through_the_seam_uploads_runs_and_downloads():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 32), dtype=np.float32)
    x = rng.standard_normal((3, 32), dtype=np.float32)
    b = rng.standard_normal(8, dtype=np.float32)
    y = _testing.linear(w, "f32", 8, 32, x, b, 1)
    np.testing.assert_allclose(y, x @ w.T + b, rtol=1e-5, atol=1e-5)


def test_a_cuda_library_without_a_driver_says_the_driver_is_missing(tmp_path):
    # CI builds the CUDA library (STARCODER_TEST_CUDA_LIB names it); on a
    # machine without an NVIDIA driver the error must say so.
    import os
    lib = os.environ.get("STARCODER_TEST_CUDA_LIB")
    if not lib:
        if os.environ.get("STARCODER_REQUIRE_PEERS"):
            pytest.fail("STARCODER_TEST_CUDA_LIB is not set (CI builds the CUDA library)")
        pytest.skip("STARCODER_TEST_CUDA_LIB not set: no CUDA library built")
    if os.path.exists("/dev/nvidia0"):
        pytest.skip("this machine has an NVIDIA GPU")
    code = ("import starcoder_cpp\n"
            "try:\n    starcoder_cpp.Model(starcoder_cpp.demo_model_path(), backend='cuda')\n"
            "except starcoder_cpp.BackendError as e:\n    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "STARCODER_CUDA_LIB": os.path.abspath(lib)})
    assert "NVIDIA driver not found" in r.stdout or "no CUDA device" in r.stdout, r.stdout + r.stderr
