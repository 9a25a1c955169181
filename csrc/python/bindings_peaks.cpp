// starcoder_cpp._core.cpu_peaks: the CPU's arithmetic peaks at the chosen
// kernel level (backend/cpu/peaks.h), for tools/bench.py's compute bound.
#include <pybind11/pybind11.h>

#include "backend/cpu/peaks.h"

namespace py = pybind11;

namespace {

void put(py::dict& d, const char* rate_key, const char* instruction_key, const sc::PeakRate& r) {
  d[rate_key] = r.available() ? py::object(py::float_(r.ops_per_s / 1e9)) : py::object(py::none());
  d[instruction_key] = r.available() ? py::object(py::str(r.instruction)) : py::object(py::none());
}

}  // namespace

void register_peaks_bindings(py::module_& m) {
  m.def(
      "cpu_peaks",
      [](int n_threads) {
        sc::CpuPeaks p;
        {
          py::gil_scoped_release nogil;
          p = sc::measure_cpu_peaks(n_threads);
        }
        py::dict d;
        d["level"] = p.level;
        d["n_threads"] = p.n_threads;
        put(d, "fp32_gflops", "fp32_instruction", p.fp32);
        put(d, "int8_gops", "int8_instruction", p.int8);
        put(d, "bf16_gflops", "bf16_instruction", p.bf16);
        return d;
      },
      py::arg("n_threads"),
      "Peak arithmetic rates of this CPU at the kernel level in use (STARCODER_CPU honoured), on n_threads "
      "threads at once, about a second in all: {level, n_threads, fp32_gflops (FMA), int8_gops (the quantized "
      "dots' int8 instruction, 2 ops per multiply-add), bf16_gflops (AVX512_BF16 at the avx512 level; None "
      "elsewhere), and the instruction of each}. A rate a level has no kernel for is None. ValueError unless "
      "1 <= n_threads <= 4 x the cores.");
}
