// This CPU's arithmetic peaks, measured with the instructions our kernels
// use: the roofline against which tools/bench.py reads prompt throughput
// (decode is read against memory bandwidth, measured in Python).
//
// Each micro-kernel is a register-resident loop of independent accumulator
// chains (enough of them to cover the instruction's latency), so the only
// limit is how many of those instructions the cores retire per second. It
// runs on n threads at once (one loop per thread, the project's ThreadPool)
// for about 0.1 s, best of 3; the result is for all threads together. The
// inner loops carry `#pragma GCC unroll`: the chains stay in registers only
// when unrolled, whatever -O level the file is built with.
//
// The level is the one the dispatcher chose (cpu_kernels().level, so
// STARCODER_CPU=avx2 measures what a laptop-class AVX2 CPU would run).
#pragma once
#include <cstdint>
#include <string>

namespace sc {

// One thread's loop: `iters` rounds over the kernel's accumulator chains.
// Returns the operations it did (2 per multiply-add lane: a flop or an int8
// op each), computed from iters, so the caller never counts instructions.
using PeakLoopFn = double (*)(int64_t iters);

struct PeakLoop {
  const char* instruction = nullptr;  // what it runs, e.g. "vfmadd231ps ymm (avx2)"
  PeakLoopFn run = nullptr;           // null: this level has no such kernel
};

// The loops of one level, by the kind of arithmetic the kernels do:
// fp32 (FMA: the float GEMM of F32/F16/BF16 weights), int8 (the quantized
// dots), bf16 (a BF16 dot-product instruction, where the CPU has one).
struct PeakLoops {
  PeakLoop fp32, int8, bf16;
};

struct PeakRate {
  std::string instruction;  // empty when not available
  double ops_per_s = 0.0;   // 0 when not available
  bool available() const { return ops_per_s > 0.0; }
};

struct CpuPeaks {
  std::string level;  // the kernel level measured
  int n_threads = 0;
  PeakRate fp32, int8, bf16;
};

// Measures the chosen level's loops on n_threads threads (1 <= n_threads <=
// max_thread_count(); std::invalid_argument otherwise). About 0.3 s a loop.
CpuPeaks measure_cpu_peaks(int n_threads);

// The loops for a level name (as cpu_kernels().level); unknown: generic's.
PeakLoops peak_loops_for_level(const std::string& level);

// ---- what the per-ISA files provide (each compiled with its level's flags) ----
// Each overwrites the loops its level runs differently from the level below
// (avx512 starts from avx2, neon_dotprod from neon); no-ops in a build
// without the file's flags.
void fill_peaks_avx2(PeakLoops& p);          // x86/peaks_avx2.cpp
void fill_peaks_avx512(PeakLoops& p);        // x86/peaks_avx512.cpp (bf16 only with AVX512_BF16)
void fill_peaks_neon(PeakLoops& p);          // arm/peaks_neon.cpp
void fill_peaks_neon_dotprod(PeakLoops& p);  // arm/peaks_neon_dotprod.cpp
// AVX-512 BF16 (vdpbf16ps), CPUID.(EAX=7,ECX=1):EAX bit 5, on top of
// cpu_supports_avx512(); false in a build without the AVX-512 file's flags.
bool cpu_supports_avx512_bf16();

}  // namespace sc
