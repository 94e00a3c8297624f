#include "step_log.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/error.h"

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

}  // namespace meridian::train
