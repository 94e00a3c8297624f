#pragma once
// The padded vocabulary a tensor-parallel model uses. The vocabulary-parallel embedding and head
// split the padded vocabulary into tp equal slices, so tp must divide it. A padded size that tp
// already divides is kept (llm.c's 50304 = 128·393 divides by 2, 3, 4, 6 and 8); otherwise it grows
// to the next multiple of 128·tp (Megatron's rule), so every slice stays a multiple of 128 wide.
// The extra rows are padding like the others: zero, masked out of the softmax, never updated.
#include <cstdint>

namespace meridian::parallel {

int64_t tensor_parallel_padded_vocab(int64_t padded_vocab_size, int tensor_parallel_size);

}  // namespace meridian::parallel
