"""The aarch64 kernel levels (neon, neon_dotprod), checked on this x86-64 machine.

tests/native/check_kernels.cpp is cross-compiled with aarch64-linux-gnu-g++
(each object with the flags CMakeLists.txt gives it: -ffp-contract=off for the
quantizers, -march=armv8.2-a+dotprod for the dot-product file only) and run
under user-mode qemu twice:

* ``-cpu max`` reports the dot-product extension: both levels are checked and
  the dispatcher picks neon_dotprod;
* ``-cpu cortex-a53`` (ARMv8.0) has no SDOT: only neon is offered, and the
  dispatcher must not pick dotprod (a dotprod kernel there is SIGILL).

The program compares every kernel of every level with the generic level on
random data and exits non-zero on a mismatch. Skipped when the cross
compiler or qemu is missing (a failure under STARCODER_REQUIRE_PEERS=1;
.ci/run installs both: ``apt-get install g++-aarch64-linux-gnu qemu-user``).
Takes ~30 s, nearly all of it compilation (two compilers at a time).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import REPO, REQUIRE_PEERS

CXX = "aarch64-linux-gnu-g++"
QEMU = "qemu-aarch64"
FLAGS = ["-O2", "-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter", "-pthread", f"-I{REPO / 'csrc'}"]


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if REQUIRE_PEERS:
            raise FileNotFoundError(f"{name} not found (apt-get install g++-aarch64-linux-gnu qemu-user)")
        pytest.skip(f"{name} not installed")
    return path


def sources() -> list[Path]:
    # The kernel tables and everything they link against; the x86 SIMD files
    # are in the glob too (they compile to stubs on aarch64, as in a real build).
    csrc = REPO / "csrc"
    cpu = csrc / "backend" / "cpu"
    files = [cpu / "kernels.cpp", cpu / "quant_dot_ref.cpp", cpu / "attention.cpp", cpu / "peaks.cpp"]
    files += sorted((cpu / "arm").glob("*.cpp")) + sorted((cpu / "x86").glob("*.cpp"))
    files += [csrc / "util" / "thread_pool.cpp", csrc / "format" / "quant.cpp", csrc / "format" / "quant_k.cpp",
              csrc / "format" / "tensor_types.cpp", REPO / "tests" / "native" / "check_kernels.cpp"]
    return files


def per_file_flags(src: Path) -> list[str]:
    """The COMPILE_OPTIONS CMakeLists.txt sets for this file on aarch64."""
    cmake = (REPO / "CMakeLists.txt").read_text()
    if src.name in ("quant.cpp", "quant_k.cpp"):
        return ["-ffp-contract=off"]
    if src.name in ("quant_dot_neon_dotprod.cpp", "peaks_neon_dotprod.cpp"):
        m = re.search(r'set\(SC_DOTPROD_FLAGS "([^"]+)"\)', cmake)
        assert m, "CMakeLists.txt lost SC_DOTPROD_FLAGS"
        return m.group(1).split(";")
    return []


@pytest.fixture(scope="module")
def check_binary(tmp_path_factory) -> Path:
    cxx = tool(CXX)
    tool(QEMU)
    out = tmp_path_factory.mktemp("aarch64")

    def compile_one(src: Path):
        obj = out / (src.stem + ".o")
        r = subprocess.run([cxx, *FLAGS, *per_file_flags(src), "-c", str(src), "-o", str(obj)],
                           capture_output=True, text=True, timeout=300)
        return src, obj, r

    with ThreadPoolExecutor(max_workers=2) as pool:  # the machine is shared: two compilers at most
        results = list(pool.map(compile_one, sources()))
    for src, _, r in results:
        assert r.returncode == 0, f"{src.name}:\n{r.stderr}"
        assert "warning:" not in r.stderr, f"{src.name} compiles with warnings:\n{r.stderr}"
    exe = out / "check_kernels"
    r = subprocess.run([cxx, "-static", "-pthread", *[str(o) for _, o, _ in results], "-o", str(exe)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return exe


def run(exe: Path, cpu: str, *args: str, level: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "STARCODER_CPU"}
    if level:
        env["STARCODER_CPU"] = level
    r = subprocess.run([QEMU, "-cpu", cpu, str(exe), *args], capture_output=True, text=True, timeout=300, env=env)
    print(r.stdout)
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


def levels_and_choice(out: str) -> tuple[list[str], str]:
    levels = re.search(r"^levels: (.*)$", out, re.M).group(1).split()
    chosen = re.search(r"^chosen: (\S+)$", out, re.M).group(1)
    return levels, chosen


KERNELS = ["dot_f32", "dot4_f32", "dot4_f16", "axpy_f32", "exp_shift_sum", "f16_to_f32",
           "quantize q8_0", "quantize q8_1", "quantize q8_K",
           "q8_0 x q8_0", "q4_0 x q8_0", "q4_1 x q8_1", "q5_0 x q8_0", "q5_1 x q8_1",
           "q2_K x q8_k", "q3_K x q8_k", "q4_K x q8_k", "q5_K x q8_k", "q6_K x q8_k",
           "attn_qk_tile", "attn_pv_tile"]


@pytest.mark.parametrize("cpu, expected", [("max", ["generic", "neon", "neon_dotprod"]),
                                           ("cortex-a53", ["generic", "neon"])])
def test_every_aarch64_level_equals_generic(check_binary, cpu, expected):
    out = run(check_binary, cpu)
    levels, chosen = levels_and_choice(out)
    assert levels == expected
    assert chosen == expected[-1]
    assert "FAIL" not in out
    for level in expected[1:]:
        assert f"checked level {level}" in out
        for kernel in KERNELS:  # every kernel really had a NEON version checked
            assert re.search(rf"^ok   {level} {re.escape(kernel)}\b", out, re.M), (level, kernel)


@pytest.mark.parametrize("cpu, forced, chosen", [("max", "neon", "neon"), ("max", "generic", "generic"),
                                                 ("cortex-a53", "neon_dotprod", "neon")])
def test_starcoder_cpu_forces_a_level_the_cpu_can_run(check_binary, cpu, forced, chosen):
    _, got = levels_and_choice(run(check_binary, cpu, "--levels", level=forced))
    assert got == chosen


@pytest.mark.parametrize("cpu, expected", [("max", ["generic", "neon", "neon_dotprod"]),
                                           ("cortex-a53", ["generic", "neon"])])
def test_every_level_s_peak_loops_run_on_a_cpu_that_has_that_level(check_binary, cpu, expected):
    out = run(check_binary, cpu, "--peaks")
    loops = {(m[0], m[1]): (m[2], m[3]) for m in re.findall(r"^peak (\S+) (\S+) (.+?)(?: ops=(\d+))?$", out, re.M)}
    assert {level for level, _ in loops} == set(expected)  # no SDOT loop offered without SDOT
    for level in expected:
        assert int(loops[(level, "fp32")][1]) > 0
        assert loops[(level, "bf16")] == ("none", "")
    assert loops[("generic", "int8")] == ("none", "")  # the generic int8 dots are scalar: no peak claimed
    assert loops[("neon", "int8")][0].startswith("smull") and int(loops[("neon", "int8")][1]) > 0
    if "neon_dotprod" in expected:
        assert loops[("neon_dotprod", "int8")][0].startswith("sdot") and int(loops[("neon_dotprod", "int8")][1]) > 0

