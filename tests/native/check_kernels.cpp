// Every kernel level this CPU runs, against the generic level, on random data.
// Self-contained (no Python): built for aarch64 and run under qemu by
// tests/test_native_aarch64.py, but it builds and runs on any host.
//
//   check_kernels             all checks; one line per check, exit 1 on a mismatch
//   check_kernels --levels    only what the dispatcher sees (levels, chosen level)
//   check_kernels --peaks     runs every level's peak loops briefly (they must
//                             execute here; no timing: qemu's would mean nothing)
//
// Tolerance: the float accumulation order only (a few ulps of the sum of
// |products|); quantizer bytes must be equal.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "backend/cpu/attention.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/peaks.h"
#include "format/quant.h"
#include "format/tensor_types.h"

using namespace sc;

namespace {

int g_failures = 0, g_checks = 0;

void report(bool ok, const std::string& level, const std::string& what, double worst) {
  ++g_checks;
  if (!ok) ++g_failures;
  std::printf("%s %s %s (max err/bound %.3g)\n", ok ? "ok  " : "FAIL", level.c_str(), what.c_str(), worst);
}

std::mt19937 rng(12345);

// kind: 0 normal, 1 heavy-tailed (Student t, 2 dof, x3), 2 normal with zero blocks,
// 3 half-integers with a +-127 in every 32 (exact rounding ties after scaling)
std::vector<float> random_floats(size_t n, int kind) {
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) {
    float v = nd(rng);
    if (kind == 1) {
      const float a = nd(rng), b = nd(rng);
      v = 3.f * v / std::sqrt((a * a + b * b) / 2.f + 1e-12f);
    }
    if (kind == 2 && (i / 32) % 3 == 1) v = 0.f;
    if (kind == 3) {
      v = float(int(rng() % 509) - 254) / 2.f;
      if (i % 32 == 5) v = 127.f;
      if (i % 32 == 9) v = -127.f;  // same magnitude later in the block: the first one sets the sign
    }
    x[i] = v;
  }
  if (kind == 2)  // a whole zero super-block too
    for (size_t i = 0; i < n && i < 256; ++i) x[i] = 0.f;
  return x;
}

const char* kKindName[] = {"normal", "heavy", "zeros", "ties"};

// ---------------------------------------------------------------- float kernels

double ratio(double diff, double bound) { return bound > 0 ? diff / bound : (diff > 0 ? 1e30 : 0.0); }

void check_float(const CpuKernels& g, const CpuKernels& k) {
  const std::string lv = k.level;
  const int sizes[] = {1, 3, 4, 7, 8, 15, 16, 17, 31, 33, 64, 100, 259, 1024};
  double w_dot = 0, w_dot4 = 0, w_f16 = 0, w_axpy = 0, w_exp = 0;
  bool ok_dot = true, ok_dot4 = true, ok_f16 = true, ok_axpy = true, ok_exp = true;
  for (int n : sizes) {
    for (int kind = 0; kind < 3; ++kind) {
      std::vector<float> w[4], x0 = random_floats(size_t(n), kind);
      std::vector<uint16_t> h[4];
      for (int r = 0; r < 4; ++r) {
        w[r] = random_floats(size_t(n), r == 3 ? 1 : 0);
        for (float v : w[r]) h[r].push_back(fp32_to_fp16(v));
      }
      auto abs_dot = [&](const float* a, const float* b) {
        double s = 0;
        for (int i = 0; i < n; ++i) s += std::fabs(double(a[i]) * b[i]);
        return s;
      };
      // dot_f32
      {
        const double d = std::fabs(double(k.dot_f32(w[0].data(), x0.data(), n)) - g.dot_f32(w[0].data(), x0.data(), n));
        const double r = ratio(d, 1e-5 * abs_dot(w[0].data(), x0.data()) + 1e-30);
        w_dot = std::max(w_dot, r);
        ok_dot &= r <= 1;
      }
      // dot4_f32
      {
        float a[8], b[8];
        k.dot4_f32(w[0].data(), w[1].data(), w[2].data(), w[3].data(), x0.data(), n, a);
        g.dot4_f32(w[0].data(), w[1].data(), w[2].data(), w[3].data(), x0.data(), n, b);
        for (int r = 0; r < 4; ++r) {
          const double q = ratio(std::fabs(double(a[r]) - b[r]), 1e-5 * abs_dot(w[r].data(), x0.data()) + 1e-30);
          w_dot4 = std::max(w_dot4, q);
          ok_dot4 &= q <= 1;
        }
      }
      // dot4_f16
      {
        float a[4], b[4];
        k.dot4_f16(h[0].data(), h[1].data(), h[2].data(), h[3].data(), x0.data(), n, a);
        g.dot4_f16(h[0].data(), h[1].data(), h[2].data(), h[3].data(), x0.data(), n, b);
        for (int r = 0; r < 4; ++r) {
          std::vector<float> wf(static_cast<size_t>(n));
          for (int i = 0; i < n; ++i) wf[size_t(i)] = fp16_to_fp32(h[r][size_t(i)]);
          const double q = ratio(std::fabs(double(a[r]) - b[r]), 1e-5 * abs_dot(wf.data(), x0.data()) + 1e-30);
          w_f16 = std::max(w_f16, q);
          ok_f16 &= q <= 1;
        }
      }
      // axpy_f32: one fused rounding per element at most
      {
        std::vector<float> ya = w[1], yb = w[1];
        const float alpha = 0.37f;
        k.axpy_f32(ya.data(), alpha, x0.data(), n);
        g.axpy_f32(yb.data(), alpha, x0.data(), n);
        for (int i = 0; i < n; ++i) {
          const double q = ratio(std::fabs(double(ya[size_t(i)]) - yb[size_t(i)]),
                                 1e-6 * (std::fabs(w[1][size_t(i)]) + std::fabs(alpha * x0[size_t(i)])) + 1e-30);
          w_axpy = std::max(w_axpy, q);
          ok_axpy &= q <= 1;
        }
      }
      // exp_shift_sum: scores spread over [-100, 0] after the shift (underflow included)
      {
        std::vector<float> sa(static_cast<size_t>(n)), sb;
        for (int i = 0; i < n; ++i) sa[size_t(i)] = 5.f + 105.f * float(rng() % 100000) / 100000.f - 100.f;
        sa[0] = 5.f;
        sb = sa;
        const float ma = k.exp_shift_sum(sa.data(), n, 5.f), mb = g.exp_shift_sum(sb.data(), n, 5.f);
        double q = ratio(std::fabs(double(ma) - mb), 1e-5 * mb);
        for (int i = 0; i < n; ++i)
          q = std::max(q, ratio(std::fabs(double(sa[size_t(i)]) - sb[size_t(i)]), 1e-6 * sb[size_t(i)] + 1e-37));
        w_exp = std::max(w_exp, q);
        ok_exp &= q <= 1;
      }
    }
  }
  report(ok_dot, lv, "dot_f32 n=1..1024", w_dot);
  report(ok_dot4, lv, "dot4_f32 n=1..1024", w_dot4);
  report(ok_f16, lv, "dot4_f16 n=1..1024", w_f16);
  report(ok_axpy, lv, "axpy_f32 n=1..1024", w_axpy);
  report(ok_exp, lv, "exp_shift_sum n=1..1024", w_exp);

  // f16_to_f32: every half, exactly (NaNs only need to stay NaN)
  std::vector<uint16_t> all(65536 + 5);
  for (size_t i = 0; i < all.size(); ++i) all[i] = uint16_t(i);
  std::vector<float> a(all.size()), b(all.size());
  k.f16_to_f32(all.data(), a.data(), int64_t(all.size()));
  g.f16_to_f32(all.data(), b.data(), int64_t(all.size()));
  int bad = 0;
  for (size_t i = 0; i < all.size(); ++i)
    if (std::isnan(b[i]) ? !std::isnan(a[i]) : std::memcmp(&a[i], &b[i], 4) != 0) ++bad;
  report(bad == 0, lv, "f16_to_f32 all 65536 halves bit-exact", bad);
}

// ---------------------------------------------------------------- quantizers

struct ActType {
  TensorType t;
  int slot;
  const char* name;
};
const ActType kActs[] = {{TensorType::Q8_0, kActQ8_0, "q8_0"},
                         {TensorType::Q8_1, kActQ8_1, "q8_1"},
                         {TensorType::Q8_K, kActQ8_K, "q8_K"}};

void check_quantizers(const CpuKernels& g, const CpuKernels& k) {
  for (const ActType& at : kActs)
    for (int kind = 0; kind < 4; ++kind) {
      int bad = 0;
      for (int64_t n : {256, 1024, 4096}) {
        const std::vector<float> x = random_floats(size_t(n), kind);
        const size_t bytes = size_t(row_size(at.t, n));
        std::vector<uint8_t> a(bytes, 0xAA), b(bytes, 0x55);
        k.quantize_act[at.slot](x.data(), a.data(), n);
        g.quantize_act[at.slot](x.data(), b.data(), n);
        if (std::memcmp(a.data(), b.data(), bytes) != 0) ++bad;
      }
      report(bad == 0, k.level, std::string("quantize ") + at.name + " " + kKindName[kind] + " bytes equal",
             bad);
    }
}

// ---------------------------------------------------------------- quantized GEMM

struct WType {
  TensorType t;
  int slot;
  const char* name;
  bool k_quant;
};
const WType kWeights[] = {
    {TensorType::Q8_0, kQ8_0, "q8_0", false}, {TensorType::Q4_0, kQ4_0, "q4_0", false},
    {TensorType::Q4_1, kQ4_1, "q4_1", false}, {TensorType::Q5_0, kQ5_0, "q5_0", false},
    {TensorType::Q5_1, kQ5_1, "q5_1", false}, {TensorType::Q4_K, kQ4_K, "q4_K", true},
    {TensorType::Q6_K, kQ6_K, "q6_K", true},  {TensorType::Q5_K, kQ5_K, "q5_K", true},
    {TensorType::Q3_K, kQ3_K, "q3_K", true},  {TensorType::Q2_K, kQ2_K, "q2_K", true},
};

void check_quant_dots(const CpuKernels& g, const CpuKernels& k) {
  for (const WType& wt : kWeights) {
    if (k.quant_dot[wt.slot] == g.quant_dot[wt.slot]) {
      std::printf("skip %s %s dot: same kernel as generic\n", k.level, wt.name);
      continue;
    }
    const TensorType at = vec_dot_type(wt.t);
    const int aslot = act_slot(at);
    double worst = 0;
    bool ok = true;
    int cases = 0;
    const int64_t sizes_legacy[] = {32, 96, 768}, sizes_k[] = {256, 1024};
    for (int n_act = 1; n_act <= 13; ++n_act) {
      const int64_t n = wt.k_quant ? sizes_k[n_act % 2] : sizes_legacy[n_act % 3];
      const int n_w = (n_act % 4 == 0) ? 1 : (n_act % 4 == 1 ? 5 : (n_act % 4 == 2 ? 17 : 35));
      // weights: normal rows, a zero row, outliers, the largest codes
      std::vector<float> wf(size_t(n_w) * size_t(n));
      for (int r = 0; r < n_w; ++r) {
        std::vector<float> row = random_floats(size_t(n), r % 3 == 2 ? 1 : 0);
        if (r == 1) row.assign(size_t(n), 0.f);
        if (r == 2)
          for (int64_t i = 0; i < n; i += 37) row[size_t(i)] = 1e4f;
        if (r == 3)
          for (float& v : row) v = (v < 0 ? -1.f : 1.f) * 65000.f / 127.f;
        std::copy(row.begin(), row.end(), wf.begin() + r * n);
      }
      const size_t w_row = size_t(row_size(wt.t, n)), a_row = size_t(row_size(at, n));
      std::vector<uint8_t> wq(w_row * size_t(n_w)), aq(a_row * size_t(n_act));
      for (int r = 0; r < n_w; ++r) quantize_row(wt.t, wf.data() + r * n, wq.data() + size_t(r) * w_row, n);
      std::vector<float> xf;
      for (int a = 0; a < n_act; ++a) {
        const std::vector<float> x = random_floats(size_t(n), a % 3);
        xf.insert(xf.end(), x.begin(), x.end());
        g.quantize_act[aslot](x.data(), aq.data() + size_t(a) * a_row, n);
      }
      // out rows wider than n_w (out_stride > n_w), as a thread's slice is
      const size_t os = size_t(n_w) + 3;
      std::vector<float> got(os * size_t(n_act), -7.f), ref(os * size_t(n_act), -7.f);
      k.quant_dot[wt.slot](n, wq.data(), w_row, n_w, aq.data(), a_row, n_act, got.data(), os);
      g.quant_dot[wt.slot](n, wq.data(), w_row, n_w, aq.data(), a_row, n_act, ref.data(), os);
      std::vector<float> wd(static_cast<size_t>(n)), xd(static_cast<size_t>(n));
      for (int r = 0; r < n_w; ++r) {
        dequantize_row(wt.t, wq.data() + size_t(r) * w_row, wd.data(), n);
        double wmax = 0;
        for (float v : wd) wmax = std::max(wmax, double(std::fabs(v)));
        for (int a = 0; a < n_act; ++a) {
          dequantize_row(at, aq.data() + size_t(a) * a_row, xd.data(), n);
          double xs = 0;
          for (float v : xd) xs += std::fabs(v);
          // reassociation bound: a few ulps of sum |w x| (terms with mins: 2 max|w| sum |x|)
          const double bound = 2e-5 * wmax * xs + 1e-6;
          const size_t o = size_t(a) * os + size_t(r);
          const double q = ratio(std::fabs(double(got[o]) - ref[o]), bound);
          worst = std::max(worst, q);
          ok &= q <= 1 && std::isfinite(got[o]);
        }
      }
      for (int a = 0; a < n_act; ++a)  // columns past n_w must be left alone
        for (size_t c = size_t(n_w); c < os; ++c) ok &= got[size_t(a) * os + c] == -7.f;
      ++cases;
    }
    report(ok, k.level, std::string(wt.name) + " x " + tensor_type_name(at) + " GEMM n_act=1..13 n_w=1..35 (" +
                            std::to_string(cases) + " cases)",
           worst);
  }
}

// ---------------------------------------------------------------- attention tiles

void check_attention(const CpuKernels& g, const CpuKernels& k) {
  double wq = 0, wp = 0;
  bool okq = true, okp = true;
  int nq = 0, np = 0;
  for (int m : {1, 3, 4, 5, 9, 13})
    for (int d : {4, 20, 32, 48, 64, 67, 128}) {
      const std::vector<float> q = random_floats(size_t(m) * size_t(d), 0), kt = random_floats(size_t(d) * kAttnTile, 0);
      std::vector<float> sa(size_t(m) * kAttnTile), sb(sa.size());
      k.attn_qk_tile(q.data(), m, d, kt.data(), sa.data());
      g.attn_qk_tile(q.data(), m, d, kt.data(), sb.data());
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < kAttnTile; ++j) {
          double s = 0;
          for (int c = 0; c < d; ++c) s += std::fabs(double(q[size_t(i * d + c)]) * kt[size_t(c * kAttnTile + j)]);
          const size_t at = size_t(i * kAttnTile + j);
          const double r = ratio(std::fabs(double(sa[at]) - sb[at]), 1e-5 * s + 1e-30);
          wq = std::max(wq, r);
          okq &= r <= 1;
        }
      ++nq;
      for (int nk : {1, 17, 64}) {
        std::vector<float> p = random_floats(size_t(m) * kAttnTile, 0);
        for (float& v : p) v = std::fabs(v);
        const std::vector<float> v = random_floats(size_t(nk) * size_t(d), 0), o0 = random_floats(size_t(m) * size_t(d), 0);
        std::vector<float> oa = o0, ob = o0;
        k.attn_pv_tile(p.data(), m, nk, v.data(), d, oa.data());
        g.attn_pv_tile(p.data(), m, nk, v.data(), d, ob.data());
        for (int i = 0; i < m; ++i)
          for (int c = 0; c < d; ++c) {
            double s = std::fabs(o0[size_t(i * d + c)]);
            for (int j = 0; j < nk; ++j) s += std::fabs(double(p[size_t(i * kAttnTile + j)]) * v[size_t(j * d + c)]);
            const size_t at = size_t(i * d + c);
            const double r = ratio(std::fabs(double(oa[at]) - ob[at]), 1e-5 * s + 1e-30);
            wp = std::max(wp, r);
            okp &= r <= 1;
          }
        ++np;
      }
    }
  report(okq, k.level, "attn_qk_tile m=1..13 d=4..128 (" + std::to_string(nq) + " cases)", wq);
  report(okp, k.level, "attn_pv_tile m=1..13 nk=1..64 d=4..128 (" + std::to_string(np) + " cases)", wp);
}

// One line per loop: "peak LEVEL KIND INSTRUCTION ops=N", or "peak LEVEL KIND none".
void run_peak_loops() {
  for (const char* const* p = supported_levels(); *p; ++p) {
    const PeakLoops loops = peak_loops_for_level(*p);
    const std::pair<const char*, const PeakLoop*> kinds[] = {{"fp32", &loops.fp32}, {"int8", &loops.int8},
                                                             {"bf16", &loops.bf16}};
    for (const auto& [kind, loop] : kinds) {
      if (loop->run) std::printf("peak %s %s %s ops=%.0f\n", *p, kind, loop->instruction, loop->run(1000));
      else std::printf("peak %s %s none\n", *p, kind);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool levels_only = argc > 1 && std::strcmp(argv[1], "--levels") == 0;
  std::printf("levels:");
  for (const char* const* p = supported_levels(); *p; ++p) std::printf(" %s", *p);
  std::printf("\nchosen: %s\n", cpu_kernels().level);
  if (levels_only) return 0;
  if (argc > 1 && std::strcmp(argv[1], "--peaks") == 0) {
    run_peak_loops();
    return 0;
  }

  const CpuKernels& g = generic_kernels();
  for (const char* const* p = supported_levels(); *p; ++p) {
    const CpuKernels* k = kernels_for_level(*p);
    if (!k || std::strcmp(k->level, *p) != 0) {
      report(false, *p, "kernels_for_level returns this level", 0);
      continue;
    }
    if (k == &g) continue;  // generic is the reference
    check_float(g, *k);
    check_quantizers(g, *k);
    check_quant_dots(g, *k);
    check_attention(g, *k);
    std::printf("checked level %s\n", *p);
  }
  std::printf("%d checks, %d failures\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
