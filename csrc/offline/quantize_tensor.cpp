#include "offline/quantize_tensor.h"

#include <stdexcept>
#include <string>

#include "format/quant.h"
#include "util/thread_pool.h"

namespace sc {

size_t quantize_tensor(TensorType t, const float* src, int64_t n_rows, int64_t n_per_row, void* dst, ThreadPool& pool) {
  if (!is_weight_quant_type(t))
    throw std::invalid_argument("quantize_tensor: cannot quantize weights to " + tensor_type_name(t));
  if (row_size(t, n_per_row) < 0)
    throw std::invalid_argument("quantize_tensor: rows of " + std::to_string(n_per_row) + " elements are not a multiple of " +
                                tensor_type_name(t) + "'s block size");
  const size_t rs = size_t(row_size(t, n_per_row));
  uint8_t* out = static_cast<uint8_t*>(dst);
  // Blocks never straddle rows, so any split into row ranges gives the same bytes.
  pool.parallel_for(n_rows, 1, [&](int64_t r0, int64_t r1, int) {
    quantize_row(t, src + r0 * n_per_row, out + size_t(r0) * rs, (r1 - r0) * n_per_row);
  });
  return size_t(n_rows) * rs;
}

size_t quantize_tensor(TensorType t, const float* src, int64_t n_rows, int64_t n_per_row, void* dst, int n_threads) {
  ThreadPool pool(resolve_thread_count(n_threads));
  return quantize_tensor(t, src, n_rows, n_per_row, dst, pool);
}

}  // namespace sc
