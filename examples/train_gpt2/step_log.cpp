#include "step_log.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "launcher/log.h"

namespace meridian::train {

StepLog::StepLog(const std::string& jsonl_path) : path_(jsonl_path) {
  if (path_.empty()) return;
  jsonl_.open(path_, std::ios::out | std::ios::trunc);
  if (!jsonl_) MERIDIAN_FAIL("--log-jsonl: cannot open '", path_, "' for writing");
}

void StepLog::write(const StepMetrics& m) {
  std::printf("step %5lld/%lld | loss %.6f | lr %.3e | norm %.4f | %8.1f ms | %9.0f tok/s | mfu %5.1f%%\n",
              static_cast<long long>(m.step + 1), static_cast<long long>(m.total_steps), m.loss, m.lr, m.grad_norm,
              m.ms, m.tokens_per_s, 100.0 * m.mfu);
  std::fflush(stdout);
  if (!jsonl_.is_open()) return;
  nlohmann::json line = {{"step", m.step},       {"loss", m.loss}, {"lr", m.lr},
                         {"grad_norm", m.grad_norm}, {"ms", m.ms},     {"tokens_per_s", m.tokens_per_s},
                         {"mfu", m.mfu}};
  jsonl_ << line.dump() << '\n';
  jsonl_.flush();
  if (!jsonl_) MERIDIAN_FAIL("--log-jsonl: writing '", path_, "' failed");
}

StepReporter::StepReporter(bool print, const std::string& jsonl_path, Rates rates)
    : print_(print), log_(print ? jsonl_path : std::string()), rates_(rates) {}

void StepReporter::record(int64_t step, double loss, double lr, double grad_norm, double ms) {
  if (step > 0 || rates_.total_steps == 1) {
    total_ms_ += ms;
    ++timed_steps_;
  }
  if (!print_) return;
  StepMetrics metrics;
  metrics.step = step;
  metrics.total_steps = rates_.total_steps;
  metrics.loss = loss;
  metrics.lr = lr;
  metrics.grad_norm = grad_norm;
  metrics.ms = ms;
  metrics.tokens_per_s = static_cast<double>(rates_.tokens_per_step) / (ms / 1e3);
  metrics.mfu = rates_.flops_per_step / (ms / 1e3) / rates_.peak_flops;
  log_.write(metrics);
}

void StepReporter::print_mean() const {
  if (timed_steps_ == 0) return;
  const double mean_ms = total_ms_ / static_cast<double>(timed_steps_);
  launcher::log_info("mean step", rates_.total_steps > 1 ? " (excluding the first)" : "", ": ", mean_ms, " ms, ",
                     static_cast<double>(rates_.tokens_per_step) / (mean_ms / 1e3), " tokens/s");
}

}  // namespace meridian::train
