// The prompt-path GEMM (quant_gemm_x86.h) at the AVX2 level: vpmaddubsw.
#include "backend/cpu/kernels.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define SC_QUANT_GEMM_FILL fill_quant_gemm_avx2
#include "backend/cpu/x86/quant_gemm_x86.h"
#else
namespace sc {
void fill_quant_gemm_avx2(CpuKernels&) {}
}  // namespace sc
#endif
