#include "training_setup.h"

#include <algorithm>
#include <cstdio>

#include "core/io/default_corpus.h"
#include "core/profiler.h"

namespace meridian::train {

io::TokenDataset load_data(const TrainOptions& options) {
  if (options.data.empty()) return io::TokenDataset::from_text(io::default_corpus(), "the built-in default corpus");
  return io::TokenDataset::open(options.data);
}

std::unique_ptr<optim::Optimizer> make_optimizer(const TrainOptions& options, std::vector<optim::OptimizerParam> params) {
  if (options.optimizer == "sgd")
    return std::make_unique<optim::Sgd>(std::move(params), optim::SgdOptions{options.momentum, 0.0f, options.weight_decay, false});
  return std::make_unique<optim::AdamW>(std::move(params),
                                        optim::AdamWOptions{options.beta1, options.beta2, options.eps, options.weight_decay});
}

void print_profile(int64_t steps) {
  std::printf("\nper-op time on rank 0, mean per step over %lld steps (inclusive; forward and backward apart):\n",
              static_cast<long long>(steps));
  for (const auto& entry : profiler::entries())
    std::printf("  %-28s %9.2f ms  (%lld calls)\n", entry.name.c_str(), entry.total_ms / static_cast<double>(steps),
                static_cast<long long>(entry.calls / std::max<int64_t>(steps, 1)));
}

}  // namespace meridian::train
