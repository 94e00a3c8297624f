#pragma once
// GPT-2 weights in llm.c's checkpoint format (the tensors stacked over layers). The file's header
// must describe the same shape as the model.
#include <filesystem>

#include "core/io/llmc_checkpoint.h"
#include "models/gpt2.h"

namespace meridian::models {

io::Gpt2CheckpointHeader llmc_header(const Gpt2Config& config);
// With tensor parallelism each rank reads the file and keeps its pieces of the logical tensors.
void load_llmc_weights(Gpt2& model, const std::filesystem::path& path);
// With tensor parallelism this is collective over the model's tp group (each logical tensor is
// gathered from its pieces) and tp rank 0 writes the file.
void save_llmc_weights(const Gpt2& model, const std::filesystem::path& path);

}  // namespace meridian::models
