#include "train_options.h"

#include <unistd.h>

#include <cxxopts.hpp>
#include <filesystem>

#include "core/error.h"
#include "core/io/llmc_checkpoint.h"
#include "launcher/usage_error.h"

namespace meridian::train {

namespace {

template <class T>
std::optional<T> optional_flag(const cxxopts::ParseResult& result, const char* name) {
  if (result.count(name) == 0) return std::nullopt;
  return result[name].as<T>();
}

// cxxopts names the value that failed to parse, not the flag; find the flag that carried it.
std::string describe_parse_error(const std::string& what, int argc, char** argv) {
  const size_t open = what.find("\u2018"), close = what.find("\u2019");
  if (open == std::string::npos || close == std::string::npos || close <= open) return what;
  const std::string value = what.substr(open + 3, close - open - 3);
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const size_t equals = arg.find('=');
    if (equals != std::string::npos && arg.substr(equals + 1) == value)
      return arg.substr(0, equals) + ": '" + value + "' is not a valid value";
    if (i + 1 < argc && argv[i + 1] == value && arg.rfind("--", 0) == 0)
      return arg + ": '" + value + "' is not a valid value";
  }
  return what;
}

void require_positive(int64_t value, const char* flag) {
  if (value <= 0) MERIDIAN_USAGE_ERROR("--", flag, " must be positive, got ", value);
}

void require_non_negative(double value, const char* flag) {
  if (value < 0.0) MERIDIAN_USAGE_ERROR("--", flag, " must not be negative, got ", value);
}

}  // namespace

cxxopts::Options make_train_cli() {
  cxxopts::Options cli("train_gpt2", "Train a GPT-2 model with Meridian (run under mpirun for data parallelism).");
  TrainOptions d;  // defaults
  // clang-format off
  cli.add_options("Model")
    ("model", "preset: gpt2-124m, gpt2-350m, gpt2-774m, gpt2-1558m or gpt-mini", cxxopts::value<std::string>()->default_value(d.model))
    ("layers", "override the preset's layer count", cxxopts::value<int64_t>())
    ("heads", "override the preset's attention heads", cxxopts::value<int64_t>())
    ("channels", "override the preset's channels", cxxopts::value<int64_t>())
    ("vocab", "override the preset's vocabulary size (padded to a multiple of 128)", cxxopts::value<int64_t>())
    ("max-seq-len", "override the preset's maximum sequence length", cxxopts::value<int64_t>())
    ("init-from", "start from an llm.c GPT-2 checkpoint (its header sets the model shape)", cxxopts::value<std::string>())
    ("recompute", "recompute each block's activations during backward (less memory)")
    ("dtype", "compute dtype: f32, or bf16 (mixed precision: bf16 activations and matmuls, fp32 master weights, gradients and optimizer state)", cxxopts::value<std::string>()->default_value("f32"));
  cli.add_options("Parallel layout")
    ("sequence-parallel", "with --tp > 1: split LayerNorm and residual activations along the sequence (Megatron sequence parallelism; --seq-len must divide by tp)");
  cli.add_options("Data")
    ("data", "training data: an llm.c token shard (.bin, glob allowed) or raw text (byte tokens); default: the built-in corpus", cxxopts::value<std::string>())
    ("batch", "sequences per micro-batch", cxxopts::value<int64_t>()->default_value(std::to_string(d.batch)))
    ("seq-len", "tokens per sequence", cxxopts::value<int64_t>()->default_value(std::to_string(d.seq_len)))
    ("grad-accum", "micro-batches per step", cxxopts::value<int64_t>()->default_value("1"))
    ("shuffle", "visit the data's windows in a seeded random order each epoch");
  cli.add_options("Optimisation")
    ("steps", "optimizer steps", cxxopts::value<int64_t>()->default_value(std::to_string(d.steps)))
    ("optimizer", "adamw or sgd", cxxopts::value<std::string>()->default_value(d.optimizer))
    ("lr", "maximum learning rate", cxxopts::value<float>()->default_value("3e-4"))
    ("warmup", "linear warmup steps", cxxopts::value<int64_t>()->default_value("0"))
    ("lr-schedule", "constant or cosine (after warmup)", cxxopts::value<std::string>()->default_value("cosine"))
    ("lr-min-frac", "cosine ends at this fraction of --lr", cxxopts::value<float>()->default_value("0"))
    ("weight-decay", "AdamW decoupled weight decay (matrices and embeddings only)", cxxopts::value<float>()->default_value("0"))
    ("beta1", "AdamW beta1", cxxopts::value<float>()->default_value("0.9"))
    ("beta2", "AdamW beta2", cxxopts::value<float>()->default_value("0.95"))
    ("eps", "AdamW epsilon", cxxopts::value<float>()->default_value("1e-8"))
    ("momentum", "SGD momentum", cxxopts::value<float>()->default_value("0.9"))
    ("grad-clip", "clip the global gradient norm to this (0 = off)", cxxopts::value<float>()->default_value("1.0"))
    ("seed", "seed for initialisation, shuffling and sampling", cxxopts::value<uint64_t>()->default_value(std::to_string(d.seed)));
  cli.add_options("Output")
    ("threads", "CPU threads (0 = all cores)", cxxopts::value<int>()->default_value("0"))
    ("log-jsonl", "write one JSON object per step to this file", cxxopts::value<std::string>())
    ("sample", "generate this many tokens after training", cxxopts::value<int64_t>()->default_value("0"))
    ("temperature", "sampling temperature", cxxopts::value<float>()->default_value("1.0"))
    ("tokenizer", "llm.c gpt2_tokenizer.bin for printing samples of GPT-2 token models", cxxopts::value<std::string>())
    ("checkpoint-out", "write the trained weights as an llm.c checkpoint", cxxopts::value<std::string>())
    ("profile", "print where each step's time goes, per op")
    ("peak-tflops", "device peak per rank for MFU (default: 0.1 per CPU thread, the fp32 sgemm ceiling measured on the dev machine)", cxxopts::value<double>()->default_value("0"))
    ("dp-comm", "on, or off to skip gradient averaging (benchmarks of compute alone; results are wrong)", cxxopts::value<std::string>()->default_value("on"))
    ("h,help", "show this help");
  // clang-format on
  return cli;
}

cxxopts::ParseResult parse_command_line(cxxopts::Options& cli, int argc, char** argv) {
  cxxopts::ParseResult result;
  try {
    result = cli.parse(argc, argv);
  } catch (const cxxopts::exceptions::exception& e) {
    MERIDIAN_USAGE_ERROR("command line: ", describe_parse_error(e.what(), argc, argv), " (see --help)");
  }
  if (!result.unmatched().empty())
    MERIDIAN_USAGE_ERROR("command line: unexpected argument '", result.unmatched().front(), "' (see --help)");
  return result;
}

TrainOptions read_train_options(const cxxopts::ParseResult& result) {
  TrainOptions o;
  try {
    o.model = result["model"].as<std::string>();
    o.overrides = {optional_flag<int64_t>(result, "layers"), optional_flag<int64_t>(result, "heads"),
                   optional_flag<int64_t>(result, "channels"), optional_flag<int64_t>(result, "vocab"),
                   optional_flag<int64_t>(result, "max-seq-len"), result.count("model") > 0};
    o.data = optional_flag<std::string>(result, "data").value_or("");
    o.init_from = optional_flag<std::string>(result, "init-from").value_or("");
    o.checkpoint_out = optional_flag<std::string>(result, "checkpoint-out").value_or("");
    o.tokenizer = optional_flag<std::string>(result, "tokenizer").value_or("");
    o.batch = result["batch"].as<int64_t>();
    o.seq_len = result["seq-len"].as<int64_t>();
    o.grad_accum = result["grad-accum"].as<int64_t>();
    o.steps = result["steps"].as<int64_t>();
    o.optimizer = result["optimizer"].as<std::string>();
    o.schedule.max_lr = result["lr"].as<float>();
    o.schedule.warmup_steps = result["warmup"].as<int64_t>();
    try {
      o.schedule.decay = optim::parse_lr_decay(result["lr-schedule"].as<std::string>());
    } catch (const Error& e) {
      MERIDIAN_USAGE_ERROR("--lr-schedule: ", e.what());
    }
    o.schedule.min_lr_fraction = result["lr-min-frac"].as<float>();
    o.weight_decay = result["weight-decay"].as<float>();
    o.beta1 = result["beta1"].as<float>();
    o.beta2 = result["beta2"].as<float>();
    o.eps = result["eps"].as<float>();
    o.momentum = result["momentum"].as<float>();
    o.grad_clip = result["grad-clip"].as<float>();
    o.seed = result["seed"].as<uint64_t>();
    o.shuffle = result.count("shuffle") > 0;
    o.threads = result["threads"].as<int>();
    o.recompute = result.count("recompute") > 0;
    const std::string dtype = result["dtype"].as<std::string>();
    if (dtype != "f32" && dtype != "bf16") MERIDIAN_USAGE_ERROR("--dtype must be f32 or bf16, got '", dtype, "'");
    o.dtype = parse_dtype(dtype);
    o.sequence_parallel = result.count("sequence-parallel") > 0;
    o.log_jsonl = optional_flag<std::string>(result, "log-jsonl").value_or("");
    o.sample_tokens = result["sample"].as<int64_t>();
    o.temperature = result["temperature"].as<float>();
    o.profile = result.count("profile") > 0;
    o.peak_tflops = result["peak-tflops"].as<double>();
    const std::string dp_comm = result["dp-comm"].as<std::string>();
    if (dp_comm != "on" && dp_comm != "off") MERIDIAN_USAGE_ERROR("--dp-comm must be on or off, got '", dp_comm, "'");
    o.dp_communicate = dp_comm == "on";
  } catch (const cxxopts::exceptions::exception& e) {
    MERIDIAN_USAGE_ERROR("command line: ", e.what(), " (see --help)");
  }

  require_positive(o.batch, "batch");
  require_positive(o.seq_len, "seq-len");
  require_positive(o.grad_accum, "grad-accum");
  if (o.steps < 0) MERIDIAN_USAGE_ERROR("--steps must not be negative, got ", o.steps);
  if (o.schedule.max_lr <= 0.0f) MERIDIAN_USAGE_ERROR("--lr must be positive, got ", o.schedule.max_lr);
  if (o.schedule.warmup_steps < 0) MERIDIAN_USAGE_ERROR("--warmup must not be negative, got ", o.schedule.warmup_steps);
  if (o.schedule.min_lr_fraction < 0.0f || o.schedule.min_lr_fraction > 1.0f)
    MERIDIAN_USAGE_ERROR("--lr-min-frac must be in [0, 1], got ", o.schedule.min_lr_fraction);
  require_non_negative(o.weight_decay, "weight-decay");
  require_non_negative(o.grad_clip, "grad-clip");
  require_non_negative(o.sample_tokens, "sample");
  require_non_negative(o.threads, "threads");
  require_non_negative(o.peak_tflops, "peak-tflops");
  if (o.beta1 < 0.0f || o.beta1 >= 1.0f) MERIDIAN_USAGE_ERROR("--beta1 must be in [0, 1), got ", o.beta1);
  if (o.beta2 < 0.0f || o.beta2 >= 1.0f) MERIDIAN_USAGE_ERROR("--beta2 must be in [0, 1), got ", o.beta2);
  if (o.eps <= 0.0f) MERIDIAN_USAGE_ERROR("--eps must be positive, got ", o.eps);
  if (o.temperature <= 0.0f) MERIDIAN_USAGE_ERROR("--temperature must be positive, got ", o.temperature);
  if (o.optimizer != "adamw" && o.optimizer != "sgd")
    MERIDIAN_USAGE_ERROR("--optimizer must be adamw or sgd, got '", o.optimizer, "'");
  check_output_directory("checkpoint-out", o.checkpoint_out);
  check_output_directory("log-jsonl", o.log_jsonl);
  o.schedule.total_steps = o.steps;
  return o;
}

void check_output_directory(const char* flag, const std::string& path) {
  if (path.empty()) return;
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  const std::filesystem::path directory = parent.empty() ? std::filesystem::path(".") : parent;
  std::error_code error;
  if (!std::filesystem::is_directory(directory, error))
    MERIDIAN_USAGE_ERROR("--", flag, " ", path, ": the directory ", directory.string(), " does not exist");
  if (::access(directory.c_str(), W_OK) != 0)
    MERIDIAN_USAGE_ERROR("--", flag, " ", path, ": the directory ", directory.string(), " is not writable");
}

namespace {

// The preset with its overrides, or the checkpoint's header.
models::Gpt2Config model_shape(const TrainOptions& options) {
  const ModelOverrides& over = options.overrides;
  if (options.init_from.empty()) {
    try {
      models::Gpt2Config config = models::Gpt2Config::preset(options.model);
      if (over.layers) config.num_layers = *over.layers;
      if (over.heads) config.num_heads = *over.heads;
      if (over.channels) config.channels = *over.channels;
      if (over.max_seq_len) config.max_seq_len = *over.max_seq_len;
      if (over.vocab) {
        config.vocab_size = *over.vocab;
        config.padded_vocab_size = models::Gpt2Config::padded(*over.vocab);
      }
      config.validate();
      return config;
    } catch (const launcher::UsageError&) {
      throw;
    } catch (const Error& e) {
      MERIDIAN_USAGE_ERROR(e.what());  // the model flags describe an impossible model
    }
  }

  const io::Gpt2CheckpointHeader header = io::read_llmc_gpt2_header(options.init_from);
  models::Gpt2Config config;
  config.max_seq_len = header.max_seq_len;
  config.vocab_size = header.vocab_size;
  config.padded_vocab_size = header.padded_vocab_size;
  config.num_layers = header.num_layers;
  config.num_heads = header.num_heads;
  config.channels = header.channels;
  auto agree = [&](const std::optional<int64_t>& flag, const char* name, int64_t from_file) {
    if (flag && *flag != from_file)
      MERIDIAN_USAGE_ERROR("--", name, " ", *flag, " contradicts checkpoint '", options.init_from, "', whose header says ",
                    from_file);
  };
  agree(over.layers, "layers", config.num_layers);
  agree(over.heads, "heads", config.num_heads);
  agree(over.channels, "channels", config.channels);
  agree(over.vocab, "vocab", config.vocab_size);
  agree(over.max_seq_len, "max-seq-len", config.max_seq_len);
  if (over.model_given) {
    models::Gpt2Config preset = models::Gpt2Config::preset(options.model);
    if (preset.num_layers != config.num_layers || preset.num_heads != config.num_heads ||
        preset.channels != config.channels || preset.vocab_size != config.vocab_size)
      MERIDIAN_USAGE_ERROR("--model ", options.model, " (", preset.to_string(), ") contradicts checkpoint '",
                    options.init_from, "' (", config.to_string(), ")");
  }
  try {
    config.validate();
  } catch (const Error& e) {
    MERIDIAN_FAIL("checkpoint '", options.init_from, "': ", e.what());
  }
  return config;
}

}  // namespace

models::Gpt2Config resolve_model_config(const TrainOptions& options) {
  const models::Gpt2Config config = model_shape(options);
  if (options.seq_len > config.max_seq_len)
    MERIDIAN_USAGE_ERROR("--seq-len ", options.seq_len, " exceeds the model's max-seq-len ", config.max_seq_len);
  return config;
}

}  // namespace meridian::train
