#include "core/optim/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace meridian::optim {

LrDecay parse_lr_decay(std::string_view name) {
  if (name == "constant") return LrDecay::constant;
  if (name == "cosine") return LrDecay::cosine;
  MERIDIAN_FAIL("unknown learning-rate schedule '", name, "' (expected constant or cosine)");
}

float LrSchedule::at(int64_t step) const {
  if (step < warmup_steps) return max_lr * static_cast<float>(step + 1) / static_cast<float>(warmup_steps);
  if (decay == LrDecay::constant) return max_lr;
  const int64_t decay_steps = std::max<int64_t>(total_steps - warmup_steps, 1);
  const double ratio = std::clamp(static_cast<double>(step - warmup_steps) / static_cast<double>(decay_steps), 0.0, 1.0);
  const double min_lr = static_cast<double>(min_lr_fraction) * max_lr;
  const double coefficient = 0.5 * (1.0 + std::cos(M_PI * ratio));
  return static_cast<float>(min_lr + coefficient * (max_lr - min_lr));
}

}  // namespace meridian::optim
