#pragma once
// What the trainer reports each step: a progress line on the console and, optionally, one JSON object
// per line in a file (written and flushed per step, so a crashed run keeps what it logged).
#include <cstdint>
#include <fstream>
#include <string>

namespace meridian::train {

struct StepMetrics {
  int64_t step = 0;  // 0-based
  int64_t total_steps = 0;
  double loss = 0.0;  // of this step's forward pass, before its update
  double lr = 0.0;
  double grad_norm = 0.0;
  double ms = 0.0;
  double tokens_per_s = 0.0;
  double mfu = 0.0;  // fraction of the device peak
};

class StepLog {
 public:
  explicit StepLog(const std::string& jsonl_path);  // empty: console only
  void write(const StepMetrics& metrics);

 private:
  std::string path_;
  std::ofstream jsonl_;
};

}  // namespace meridian::train
