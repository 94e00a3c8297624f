#pragma once
// The trainer's command line: model shape, data, optimisation, logging.
#include <cstdint>
#include <cxxopts.hpp>
#include <optional>
#include <string>

#include "core/optim/lr_schedule.h"
#include "models/gpt2.h"

namespace meridian::train {

struct ModelOverrides {
  std::optional<int64_t> layers, heads, channels, vocab, max_seq_len;
  bool model_given = false;  // --model was on the command line
};

struct TrainOptions {
  std::string model = "gpt-mini";
  ModelOverrides overrides;
  std::string data;       // empty: the built-in default corpus
  std::string init_from;  // llm.c checkpoint
  std::string checkpoint_out;
  std::string tokenizer;
  int64_t batch = 4;
  int64_t seq_len = 64;
  int64_t grad_accum = 1;
  int64_t steps = 20;
  std::string optimizer = "adamw";
  optim::LrSchedule schedule;  // max_lr, warmup, decay, min fraction (total set from steps)
  float weight_decay = 0.0f;
  float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f;
  float momentum = 0.9f;
  float grad_clip = 1.0f;
  uint64_t seed = 1337;
  bool shuffle = false;
  int threads = 0;  // 0: OpenMP's default
  bool recompute = false;
  DType dtype = DType::f32;  // --dtype: compute dtype (bf16: mixed precision on fp32 master weights)
  bool sequence_parallel = false;  // with --tp > 1: Megatron sequence parallelism
  std::string log_jsonl;
  int64_t sample_tokens = 0;
  float temperature = 1.0f;
  bool profile = false;
  double peak_tflops = 0.0;  // 0: the default for the device (see trainer)
  bool dp_communicate = true;  // --dp-comm off: benchmarks only (gradients are not averaged)
};

// The trainer's flags (the launcher adds the parallel-layout ones to the same set).
cxxopts::Options make_train_cli();
// Parses argv with `cli`; a value that fails to parse is reported with the flag that carried it.
// Throws launcher::UsageError on any command-line mistake.
cxxopts::ParseResult parse_command_line(cxxopts::Options& cli, int argc, char** argv);
// Reads and validates the trainer's flags; throws launcher::UsageError naming the flag.
TrainOptions read_train_options(const cxxopts::ParseResult& result);

// The model shape from the preset and overrides, or from the checkpoint's header when --init-from is
// given (then any shape flag that contradicts the file is an error naming both). A --seq-len over the
// model's max-seq-len is an error too.
models::Gpt2Config resolve_model_config(const TrainOptions& options);

// Fails at startup, not after training, when an output file cannot be created: PATH's directory
// must exist and be writable (launcher::UsageError naming --FLAG and the path).
void check_output_directory(const char* flag, const std::string& path);

}  // namespace meridian::train
