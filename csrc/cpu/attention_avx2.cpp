// The attention tiles compiled for AVX2 (16 ymm: 4x16 accumulator tiles).
#include "cpu/attention.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__)

namespace sc {
namespace {
#include "cpu/attention_tiles.inc"

void qk_tile_avx2(const float* q, int m, int d, const float* kt, float* s) { qk_tile_t<4, 16>(q, m, d, kt, s); }
void pv_tile_avx2(const float* p, int m, int nk, const float* v, int d, float* o) {
  pv_tile_t<4, 16>(p, m, nk, v, d, o);
}
}  // namespace

void fill_attention_avx2(CpuKernels& k) {
  k.attn_qk_tile = qk_tile_avx2;
  k.attn_pv_tile = pv_tile_avx2;
}

}  // namespace sc

#else

namespace sc {
void fill_attention_avx2(CpuKernels&) {}
}  // namespace sc

#endif
