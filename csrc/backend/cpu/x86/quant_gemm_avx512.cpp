// The prompt-path GEMM (quant_gemm_x86.h) at the AVX-512 level: vpdpbusd
// and vpdpwssd in 256-bit registers. Installed over this level's row
// kernels, which it wraps (decode and the rows that do not fill a panel).
#include "backend/cpu/kernels.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__)
#define SC_QUANT_GEMM_FILL fill_quant_gemm_avx512
#include "backend/cpu/x86/quant_gemm_x86.h"
#else
namespace sc {
void fill_quant_gemm_avx512(CpuKernels&) {}
}  // namespace sc
#endif
