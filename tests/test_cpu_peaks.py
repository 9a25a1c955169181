"""starcoder_cpp._core.cpu_peaks: the CPU's arithmetic peaks with the
instructions our kernels use, at the kernel level in use (the roofline that
tools/bench.py reads prompt figures against). Each level runs in its own
process (STARCODER_CPU is read once, at start-up). Never a speed threshold:
only that each rate is measured, or absent exactly where it should be."""

from __future__ import annotations

import math
import os
import threading
import time

import pytest

from conftest import json_from_python

from starcoder_cpp import _core, _testing

# The int8 instruction each level's quantized kernels are built on.
INT8_INSTRUCTION = {"avx2": "vpmaddubsw", "avx512": "vpdpbusd", "avx512_zmm": "vpdpbusd", "neon": "smull", "neon_dotprod": "sdot"}


def cpu_flags() -> set:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def peaks_at(level: str, n_threads: int = 1) -> dict:
    return json_from_python(f"import json, starcoder_cpp._core as c; print(json.dumps(c.cpu_peaks({n_threads})))",
                            level)


def positive(x) -> bool:
    return isinstance(x, float) and math.isfinite(x) and x > 0


@pytest.mark.parametrize("level", _testing.cpu_levels())
def test_every_level_measures_fp32_and_its_int8_instruction(level):
    p = peaks_at(level)
    assert p["level"] == level and p["n_threads"] == 1
    assert positive(p["fp32_gflops"]) and p["fp32_instruction"]
    if level == "generic":  # its int8 dots are scalar reference code: no peak is claimed
        assert p["int8_gops"] is None and p["int8_instruction"] is None
    else:
        assert positive(p["int8_gops"])
        assert p["int8_instruction"].startswith(INT8_INSTRUCTION[level]), p["int8_instruction"]


@pytest.mark.parametrize("level", _testing.cpu_levels())
def test_bf16_is_measured_exactly_where_the_avx512_level_has_avx512_bf16(level):
    p = peaks_at(level)
    if level.startswith("avx512") and "avx512_bf16" in cpu_flags():
        assert positive(p["bf16_gflops"]) and p["bf16_instruction"].startswith("vdpbf16ps")
    else:
        assert p["bf16_gflops"] is None and p["bf16_instruction"] is None


def test_the_default_level_is_the_dispatchers_choice():
    p, chosen = json_from_python("import json, starcoder_cpp._core as c, starcoder_cpp._testing as t; "
                                 "print(json.dumps([c.cpu_peaks(2), t.default_level()]))")
    assert p["level"] == chosen
    assert p["n_threads"] == 2 and positive(p["fp32_gflops"])


@pytest.mark.parametrize("n_threads", [0, -1, 4 * (os.cpu_count() or 1) + 1])
def test_a_thread_count_outside_1_to_4x_the_cores_is_a_value_error(n_threads):
    with pytest.raises(ValueError, match="n_threads"):
        _core.cpu_peaks(n_threads)


def test_other_python_threads_run_while_it_measures():
    # The measurement takes >= 0.3 s per loop by construction (3 repetitions
    # of 0.1 s); with the GIL held, no other thread could run meanwhile.
    span = {}
    ticks = []

    def measure():
        span["start"] = time.perf_counter()
        _core.cpu_peaks(1)
        span["end"] = time.perf_counter()

    t = threading.Thread(target=measure)
    t.start()
    while t.is_alive():
        ticks.append(time.perf_counter())
        time.sleep(0.005)
    t.join()
    inside = [x for x in ticks if span["start"] + 0.05 < x < span["end"] - 0.05]
    assert inside, "no other thread ran during cpu_peaks"
