// Whole-tensor quantization for the offline tools (convert, quantize): the
// reference row quantizers of format/quant.h run over a matrix on a pool of
// threads. Not used by inference.
#pragma once
#include <cstddef>
#include <cstdint>

#include "format/tensor_types.h"

namespace sc {

class ThreadPool;

// Quantizes a row-major [n_rows, n_per_row] float32 matrix into `dst`
// (n_rows * row_size(t, n_per_row) bytes), rows split over the pool's
// threads. Byte-identical to llama.cpp's quantization without an importance
// matrix. Returns the number of bytes written.
size_t quantize_tensor(TensorType t, const float* src, int64_t n_rows, int64_t n_per_row, void* dst, ThreadPool& pool);
size_t quantize_tensor(TensorType t, const float* src, int64_t n_rows, int64_t n_per_row, void* dst, int n_threads);

}  // namespace sc
