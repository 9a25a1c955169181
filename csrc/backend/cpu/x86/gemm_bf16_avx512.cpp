// The bf16 float GEMM of the prompt path (kernels.h: FloatGemm, gemm_bf16)
// with vdpbf16ps: 32 bfloat16 pairs multiplied and summed into 16 float32
// lanes per instruction, twice the rate of float32 FMAs. The weights and the
// activations are rounded to bfloat16 while they are packed (the weights
// panel by panel, never as a copy of the matrix); the sums stay float32.
// This file alone is compiled with the AVX-512 and AVX512_BF16 flags, and
// fill_gemm_bf16_avx512 installs it only where cpuid reports AVX512_BF16.
#include "backend/cpu/kernels.h"
#include "backend/cpu/peaks.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512DQ__) && defined(__AVX512VNNI__) && defined(__AVX512BF16__)
// GCC 12's AVX-512 headers trip -Wuninitialized (GCC bug 105593; see kernels_avx512.cpp).
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <array>
#include <cstring>
#include <utility>

#include "backend/cpu/x86/transpose_avx2.h"

namespace sc {
namespace {

// The float32 tile's shape (kernels_avx512.cpp): 12 tokens x 32 outputs, 24
// zmm accumulators, 2 weight loads and 12 broadcast activation pairs a step.
// A step here is a pair of K elements.
constexpr int kMr = 12, kNr = 32;

inline __mmask16 first_lanes(int64_t n) { return __mmask16((1u << n) - 1); }

size_t elem_bytes(TensorType t) { return t == TensorType::F32 ? 4 : 2; }

// Element k of a weight row as bfloat16 bits.
uint32_t bf16_at(TensorType t, const uint8_t* row, int64_t k) {
  uint16_t h;
  std::memcpy(&h, row + size_t(k) * 2, 2);
  if (t == TensorType::BF16) return h;
  if (t == TensorType::F16) return fp32_to_bf16(fp16_to_fp32(h));
  float v;
  std::memcpy(&v, row + size_t(k) * 4, 4);
  return fp32_to_bf16(v);
}

// One 32-bit unit: elements k and k + 1 (zero at or past k_end) of a row.
uint32_t pair_at(TensorType t, const uint8_t* row, int64_t k, int64_t k_end) {
  return bf16_at(t, row, k) | (k + 1 < k_end ? bf16_at(t, row, k + 1) << 16 : 0u);
}

// 16 elements of a row from k as 8 units (bf16 rows are already pairs).
inline __m256i units8(TensorType t, const uint8_t* row, int64_t k) {
  const uint8_t* p = row + size_t(k) * elem_bytes(t);
  if (t == TensorType::BF16) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m512 f = t == TensorType::F16 ? _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)))
                                        : _mm512_loadu_ps(p);
  return (__m256i)_mm512_cvtneps_pbh(f);
}

// Groups of 8 full rows go through 8x8 transposes of units; a K tail and a
// short last group go unit by unit.
void gemm_pack_w_bf16_avx512(TensorType t, const uint8_t* w, size_t row_bytes, int n_rows, int64_t k0, int64_t kc,
                             int nr, float* panel_f) {
  uint32_t* panel = reinterpret_cast<uint32_t*>(panel_f);
  const int64_t n_units = (kc + 1) / 2;
  for (int j0 = 0; j0 < nr; j0 += 8) {
    int64_t u = 0;
    if (j0 + 8 <= n_rows) {
      for (; 2 * u + 16 <= kc; u += 8) {
        __m256i r[8];
        for (int j = 0; j < 8; ++j) {
          const uint8_t* row = w + size_t(j0 + j) * row_bytes;
          // as gemm_pack_w_avx2: many short row segments defeat the hardware prefetcher
          _mm_prefetch(reinterpret_cast<const char*>(row + size_t(k0 + 2 * u) * elem_bytes(t) + 512), _MM_HINT_T0);
          r[j] = units8(t, row, k0 + 2 * u);
        }
        transpose8x8_epi32(r);
        for (int g = 0; g < 8; ++g) _mm256_storeu_si256(reinterpret_cast<__m256i*>(panel + (u + g) * nr + j0), r[g]);
      }
    }
    for (; u < n_units; ++u)
      for (int j = j0; j < j0 + 8; ++j)
        panel[u * nr + j] = j < n_rows ? pair_at(t, w + size_t(j) * row_bytes, k0 + 2 * u, k0 + kc) : 0u;
  }
}

// Each row is rounded 16 elements at a time and its 8 units scattered into
// the panel: the activations are packed once per call, for every output.
void gemm_pack_x_panel_bf16_avx512(const float* x, int64_t ldx, int n_rows, int64_t n, int mr, float* panel_f) {
  uint32_t* panel = reinterpret_cast<uint32_t*>(panel_f);
  const int64_t n_units = (n + 1) / 2;
  for (int i = 0; i < mr; ++i) {
    if (i >= n_rows) {
      for (int64_t u = 0; u < n_units; ++u) panel[u * mr + i] = 0u;
      continue;
    }
    const uint8_t* row = reinterpret_cast<const uint8_t*>(x + i * ldx);
    int64_t u = 0;
    for (; 2 * u + 16 <= n; u += 8) {
      alignas(32) uint32_t v[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(v), units8(TensorType::F32, row, 2 * u));
      for (int g = 0; g < 8; ++g) panel[(u + g) * mr + i] = v[g];
    }
    for (; u < n_units; ++u) panel[u * mr + i] = pair_at(TensorType::F32, row, 2 * u, n);
  }
}

// Accumulators stay in registers: loops over them are fully unrolled and
// indexed by constants only (as gemm_tile_avx512_m).
template <int M>
void gemm_tile_bf16_avx512_m(int64_t kc, const float* a_f, const float* b, float* c, int64_t ldc, int n,
                             bool accumulate) {
  const int32_t* a = reinterpret_cast<const int32_t*>(a_f);
  __m512 acc[M][2];
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  const int64_t n_units = (kc + 1) / 2;
  for (int64_t u = 0; u < n_units; ++u, a += kMr, b += kNr) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b), b1 = (__m512bh)_mm512_loadu_si512(b + 16);
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
      const __m512bh ai = (__m512bh)_mm512_set1_epi32(a[i]);
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
    }
  }
  const __mmask16 m0 = n >= 16 ? __mmask16(0xFFFF) : first_lanes(n);
  const __mmask16 m1 = n >= 32 ? __mmask16(0xFFFF) : n > 16 ? first_lanes(n - 16) : __mmask16(0);
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i) {
    float* ci = c + i * ldc;
    if (accumulate) {
      acc[i][0] = _mm512_add_ps(acc[i][0], _mm512_maskz_loadu_ps(m0, ci));
      acc[i][1] = _mm512_add_ps(acc[i][1], _mm512_maskz_loadu_ps(m1, ci + 16));
    }
    _mm512_mask_storeu_ps(ci, m0, acc[i][0]);
    _mm512_mask_storeu_ps(ci + 16, m1, acc[i][1]);
  }
}

using TileFn = void (*)(int64_t, const float*, const float*, float*, int64_t, int, bool);

template <size_t... I>
constexpr std::array<TileFn, sizeof...(I)> make_tiles(std::index_sequence<I...>) {
  return {gemm_tile_bf16_avx512_m<int(I) + 1>...};
}
constexpr std::array<TileFn, kMr> kTiles = make_tiles(std::make_index_sequence<kMr>());

void gemm_tile_bf16_avx512(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int m, int n,
                           bool accumulate) {
  kTiles[size_t(m - 1)](kc, a, b, c, ldc, n, accumulate);
}

}  // namespace

void fill_gemm_bf16_avx512(CpuKernels& k) {
  if (cpu_supports_avx512_bf16())
    k.gemm_bf16 = {kMr, kNr, 2, gemm_pack_w_bf16_avx512, gemm_pack_x_panel_bf16_avx512, gemm_tile_bf16_avx512};
}

}  // namespace sc

#else  // not an x86-64 build with the flags above

namespace sc {
void fill_gemm_bf16_avx512(CpuKernels&) {}
}  // namespace sc

#endif
