// The generic level's loop, the choice of loops by level, and the timing.
#include "backend/cpu/peaks.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <vector>

#include "backend/cpu/kernels.h"
#include "util/thread_pool.h"

namespace sc {
namespace {

// Where every loop's accumulators end up, so that no loop is dead code.
volatile float g_generic_sink;

// The generic level's float kernels are plain C++ that the compiler
// vectorises with the baseline flags (SSE2 on x86-64: a multiply and an add,
// no FMA). 48 chains: 12 vector registers of 4 lanes, enough to cover the
// multiply-then-add latency on two pipes.
double fp32_generic(int64_t iters) {
  constexpr int kChains = 48;
  volatile float va = 0.999f, vb = 0.001f;  // not constants: nothing to fold
  const float a = va, b = vb;
  float acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = 1.0f + 0.01f * float(j);
  for (int64_t it = 0; it < iters; ++it) {
    #pragma GCC unroll 64
    for (int j = 0; j < kChains; ++j) acc[j] = acc[j] * a + b;  // stays near 1: no denormals, no overflow
  }
  float s = 0.f;
  for (int j = 0; j < kChains; ++j) s += acc[j];
  g_generic_sink = s;
  return 2.0 * kChains * double(iters);
}

constexpr double kRepSeconds = 0.1;  // one repetition, all threads at once
constexpr int kReps = 3;             // best of

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Operations per second of `loop` on every thread of the pool: iterations
// calibrated on one thread (which also wakes the core up from idle), then
// kReps timed repetitions of all threads together, the best one.
double measure_rate(PeakLoopFn loop, ThreadPool& pool) {
  int64_t iters = 1 << 10;
  double dt = 0.0;
  for (;;) {
    const auto t0 = std::chrono::steady_clock::now();
    loop(iters);
    dt = seconds_since(t0);
    if (dt >= 0.02 || iters >= (int64_t(1) << 40)) break;
    iters *= 2;
  }
  const int64_t rep_iters = std::max<int64_t>(1, int64_t(double(iters) * kRepSeconds / std::max(dt, 1e-9)));
  const int n = pool.size();
  double best = 0.0;
  for (int rep = 0; rep < kReps; ++rep) {
    std::vector<double> ops(size_t(n), 0.0);
    const auto t0 = std::chrono::steady_clock::now();
    pool.parallel_for(n, 1, [&](int64_t begin, int64_t end, int) {
      for (int64_t i = begin; i < end; ++i) ops[size_t(i)] = loop(rep_iters);
    });
    const double elapsed = seconds_since(t0);
    double total = 0.0;
    for (double o : ops) total += o;
    if (elapsed > 0.0) best = std::max(best, total / elapsed);
  }
  return best;
}

PeakRate measure(const PeakLoop& loop, ThreadPool& pool) {
  PeakRate r;
  if (!loop.run) return r;
  r.instruction = loop.instruction;
  r.ops_per_s = measure_rate(loop.run, pool);
  return r;
}

}  // namespace

PeakLoops peak_loops_for_level(const std::string& level) {
  PeakLoops p;
#if defined(__x86_64__)
  p.fp32 = {"mulps+addps (sse2, generic)", fp32_generic};
#else
  p.fp32 = {"compiler-vectorised multiply-add (generic)", fp32_generic};
#endif
  // The generic level's int8 dots are scalar reference code: no SIMD int8
  // instruction to measure, so no int8 peak is claimed for it.
  const bool avx512 = level == "avx512" || level == "avx512_zmm";
  if (level == "avx2" || avx512) fill_peaks_avx2(p);
  if (avx512) fill_peaks_avx512(p);
  if (level == "neon" || level == "neon_dotprod") fill_peaks_neon(p);
  if (level == "neon_dotprod") fill_peaks_neon_dotprod(p);
  return p;
}

CpuPeaks measure_cpu_peaks(int n_threads) {
  if (n_threads < 1)
    throw std::invalid_argument("n_threads must be >= 1, got " + std::to_string(n_threads));
  if (n_threads > max_thread_count())
    throw std::invalid_argument("n_threads " + std::to_string(n_threads) + " is more than " +
                                std::to_string(max_thread_count()) + " (4 x the cores this process may use)");
  CpuPeaks out;
  out.level = cpu_kernels().level;
  out.n_threads = n_threads;
  const PeakLoops loops = peak_loops_for_level(out.level);
  ThreadPool pool(n_threads);
  out.fp32 = measure(loops.fp32, pool);
  out.int8 = measure(loops.int8, pool);
  out.bf16 = measure(loops.bf16, pool);
  return out;
}

}  // namespace sc
