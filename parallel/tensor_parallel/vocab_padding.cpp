#include "parallel/tensor_parallel/vocab_padding.h"

#include "core/error.h"

namespace meridian::parallel {

int64_t tensor_parallel_padded_vocab(int64_t padded_vocab_size, int tensor_parallel_size) {
  MERIDIAN_CHECK(padded_vocab_size > 0 && tensor_parallel_size > 0, "padded vocabulary ", padded_vocab_size,
                 " for tp ", tensor_parallel_size);
  if (padded_vocab_size % tensor_parallel_size == 0) return padded_vocab_size;
  const int64_t multiple = 128 * static_cast<int64_t>(tensor_parallel_size);
  return (padded_vocab_size + multiple - 1) / multiple * multiple;
}

}  // namespace meridian::parallel
