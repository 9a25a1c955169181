// The attention tiles compiled for AVX-512 (32 zmm: 4x32 score / 4x64 output accumulator tiles).
#include "cpu/attention.h"

#if defined(__x86_64__) && defined(__AVX512F__)

namespace sc {
namespace {
#include "cpu/attention_tiles.inc"

void qk_tile_avx512(const float* q, int m, int d, const float* kt, float* s) { qk_tile_t<4, 32>(q, m, d, kt, s); }
void pv_tile_avx512(const float* p, int m, int nk, const float* v, int d, float* o) {
  pv_tile_t<4, 64>(p, m, nk, v, d, o);
}
}  // namespace

void fill_attention_avx512(CpuKernels& k) {
  k.attn_qk_tile = qk_tile_avx512;
  k.attn_pv_tile = pv_tile_avx512;
}

}  // namespace sc

#else

namespace sc {
void fill_attention_avx512(CpuKernels&) {}
}  // namespace sc

#endif
