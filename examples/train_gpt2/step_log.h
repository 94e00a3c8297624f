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

// A training loop's report: every step goes to the StepLog (on the printing rank only), timed from
// `start`; the mean over the steps after the first (which allocates and warms caches) is printed at
// the end.
class StepReporter {
 public:
  struct Rates {
    int64_t total_steps = 0;
    int64_t tokens_per_step = 0;
    double flops_per_step = 0.0;
    double peak_flops = 0.0;  // of the whole job
  };
  StepReporter(bool print, const std::string& jsonl_path, Rates rates);

  void record(int64_t step, double loss, double lr, double grad_norm, double ms);
  void print_mean() const;

 private:
  bool print_;
  StepLog log_;
  Rates rates_;
  double total_ms_ = 0.0;
  int64_t timed_steps_ = 0;
};

}  // namespace meridian::train
