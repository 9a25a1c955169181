// AVX2 + FMA + F16C quantized dot products: the k-quants Q2_K..Q6_K, Q8_K activations.
// Each kernel computes what its reference in quant.cpp / quant_k.cpp computes
// (integer sums per block are exact; only the float accumulation order may
// differ). Compiled with this level's flags only; chosen at run time.
#include "cpu/kernels.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

#include "quant.h"

namespace sc {
namespace {

}  // namespace

void fill_quant_k_avx2(CpuKernels& k) {}

}  // namespace sc

#else

namespace sc {
void fill_quant_k_avx2(CpuKernels&) {}
}  // namespace sc

#endif
