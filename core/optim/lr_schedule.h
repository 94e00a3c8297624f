#pragma once
#include <cstdint>
#include <string_view>

namespace meridian::optim {

enum class LrDecay { constant, cosine };
LrDecay parse_lr_decay(std::string_view name);  // "constant" | "cosine"

// Linear warmup to max_lr over `warmup_steps` (step s gets max_lr·(s+1)/warmup), then constant or a
// cosine from max_lr down to min_lr_fraction·max_lr at `total_steps` (llm.c's schedule).
struct LrSchedule {
  float max_lr = 3e-4f;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  LrDecay decay = LrDecay::cosine;
  float min_lr_fraction = 0.0f;

  float at(int64_t step) const;  // step is 0-based
};

}  // namespace meridian::optim
