#include "tensor_parallel_setup.h"

#include "launcher/usage_error.h"

namespace meridian::train {

void check_tensor_parallel_layout(const models::Gpt2Config& config, const TrainOptions& options, int tp) {
  if (tp <= 1) return;
  if (config.channels % tp != 0)
    MERIDIAN_USAGE_ERROR("--tp ", tp, " does not divide --channels ", config.channels,
                         " (each tensor-parallel rank holds channels/tp columns of every projection)");
  if (config.num_heads % tp != 0)
    MERIDIAN_USAGE_ERROR("--tp ", tp, " does not divide --heads ", config.num_heads,
                         " (each tensor-parallel rank holds whole attention heads)");
  if (options.sequence_parallel && options.seq_len % tp != 0)
    MERIDIAN_USAGE_ERROR("--sequence-parallel splits each sequence over --tp ", tp, " ranks, but --seq-len ",
                         options.seq_len, " is not divisible by ", tp);
  if (options.sequence_parallel && options.sample_tokens > 0)
    MERIDIAN_USAGE_ERROR("--sample with --sequence-parallel is not supported (sampling grows the sequence one ",
                         "token at a time, which --tp ", tp, " cannot split); sample from a --checkpoint-out instead");
}

parallel::TensorParallelContext tensor_parallel_context(const parallel::ProcessGrid& grid, const TrainOptions& options,
                                                        const comm::TensorGroupFactory& tensor_groups) {
  return {comm::tensor_group(tensor_groups, grid.group_ptr(parallel::Axis::tp)), options.sequence_parallel};
}

}  // namespace meridian::train
