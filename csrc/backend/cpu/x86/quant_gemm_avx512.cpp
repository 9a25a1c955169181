// The prompt-path GEMM (quant_gemm_x86.h) at the AVX-512 levels: vpdpbusd
// and vpdpwssd on 8-row panels in 256-bit registers, Q4_0 and Q8_0 on
// 16-row panels as two 256-bit halves and the k-quants on 16-row panels in
// 512-bit registers (avx512), and every format on 16-row panels in 512-bit
// registers (avx512_zmm, for full-width 512-bit cores).
// Each is installed over the kernels below it, which it wraps (decode and
// the rows that do not fill a panel).
#include "backend/cpu/kernels.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__)
// GCC 12's AVX-512 intrinsics (_mm512_cvtepi32_ps among them) start from
// _mm512_undefined_*, which -W(maybe-)uninitialized reports wherever they
// are inlined (gcc bug 105593).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define SC_QUANT_GEMM_FILL fill_quant_gemm_avx512
#define SC_QUANT_GEMM_FILL_WIDE fill_quant_gemm_avx512_zmm
#include "backend/cpu/x86/quant_gemm_x86.h"
#else
namespace sc {
void fill_quant_gemm_avx512(CpuKernels&) {}
void fill_quant_gemm_avx512_zmm(CpuKernels&) {}
}  // namespace sc
#endif
