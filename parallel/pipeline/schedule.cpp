#include "parallel/pipeline/schedule.h"

#include <algorithm>

#include "core/error.h"

namespace meridian::parallel {

namespace {

using Actions = std::vector<PipelineAction>;

PipelineAction forward(int micro_batch, int chunk = 0) { return {PassKind::forward, chunk, micro_batch}; }

Actions gpipe(const ScheduleShape& shape) {
  Actions actions;
  for (int m = 0; m < shape.micro_batches; ++m) actions.push_back(forward(m));
  for (int m = 0; m < shape.micro_batches; ++m) actions.push_back({PassKind::backward, 0, m});
  return actions;
}

// Warm-up: enough forwards that the last stage can start its first backward as soon as its first
// forward is done; then alternate; then drain the backwards.
Actions one_f_one_b(const ScheduleShape& shape, int rank) {
  const int warmup = std::min(shape.pipeline_size - rank - 1, shape.micro_batches);
  const int steady = shape.micro_batches - warmup;
  Actions actions;
  for (int m = 0; m < warmup; ++m) actions.push_back(forward(m));
  for (int i = 0; i < steady; ++i) {
    actions.push_back(forward(warmup + i));
    actions.push_back({PassKind::backward, 0, i});
  }
  for (int m = steady; m < shape.micro_batches; ++m) actions.push_back({PassKind::backward, 0, m});
  return actions;
}

// Megatron's interleaved 1F1B: the rank's k-th forward is micro-batch (k / (pp·V))·pp + k % pp of
// chunk (k / pp) % V; backwards walk the chunks in reverse. The warm-up is long enough for the
// first backward of the last chunk to have its gradient: 2·(pp − rank − 1) + (V − 1)·pp forwards.
Actions interleaved(const ScheduleShape& shape, int rank) {
  const int p = shape.pipeline_size, V = shape.virtual_stages;
  const int total = shape.micro_batches * V;
  const auto chunk_of = [&](int k, bool is_forward) {
    const int chunk = (k % (p * V)) / p;
    return is_forward ? chunk : V - 1 - chunk;
  };
  const auto micro_batch_of = [&](int k) { return (k / (p * V)) * p + k % p; };
  const int warmup = std::min((p - rank - 1) * 2 + (V - 1) * p, total);
  const int steady = total - warmup;
  Actions actions;
  for (int k = 0; k < warmup; ++k) actions.push_back(forward(micro_batch_of(k), chunk_of(k, true)));
  for (int i = 0; i < steady; ++i) {
    const int k = warmup + i;
    actions.push_back(forward(micro_batch_of(k), chunk_of(k, true)));
    actions.push_back({PassKind::backward, chunk_of(i, false), micro_batch_of(i)});
  }
  for (int k = steady; k < total; ++k)
    actions.push_back({PassKind::backward, chunk_of(k, false), micro_batch_of(k)});
  return actions;
}

// ZB-H1: the 1F1B order with B for backward, and W passes delayed: rank r runs its first W only
// after r + 1 B passes, so every stage has pp micro-batches in flight (as the first stage of 1F1B
// has) and the delayed W passes fill the cool-down, where 1F1B would wait for gradients.
Actions zero_bubble_h1(const ScheduleShape& shape, int rank) {
  const int warmup = std::min(shape.pipeline_size - rank - 1, shape.micro_batches);
  const int steady = shape.micro_batches - warmup;
  Actions actions;
  int next_weight = 0;
  const auto weight = [&] { actions.push_back({PassKind::backward_weight, 0, next_weight++}); };
  for (int m = 0; m < warmup; ++m) actions.push_back(forward(m));
  for (int i = 0; i < steady; ++i) {
    actions.push_back(forward(warmup + i));
    actions.push_back({PassKind::backward_input, 0, i});
    if (i >= rank) weight();
  }
  for (int m = steady; m < shape.micro_batches; ++m) {
    actions.push_back({PassKind::backward_input, 0, m});
    weight();
  }
  while (next_weight < shape.micro_batches) weight();
  return actions;
}

}  // namespace

std::string_view schedule_name(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::gpipe: return "gpipe";
    case ScheduleKind::one_f_one_b: return "1f1b";
    case ScheduleKind::interleaved: return "interleaved";
    case ScheduleKind::zero_bubble_h1: return "zb-h1";
  }
  return "?";
}

ScheduleKind parse_schedule_kind(std::string_view name) {
  for (ScheduleKind kind : {ScheduleKind::gpipe, ScheduleKind::one_f_one_b, ScheduleKind::interleaved,
                            ScheduleKind::zero_bubble_h1})
    if (name == schedule_name(kind)) return kind;
  MERIDIAN_FAIL("unknown pipeline schedule '", name, "' (expected gpipe, 1f1b, interleaved or zb-h1)");
}

bool splits_backward(ScheduleKind kind) { return kind == ScheduleKind::zero_bubble_h1; }

std::string_view pass_name(PassKind kind) {
  switch (kind) {
    case PassKind::forward: return "forward";
    case PassKind::backward: return "backward";
    case PassKind::backward_input: return "backward_input";
    case PassKind::backward_weight: return "backward_weight";
  }
  return "?";
}

void check_schedule_shape(ScheduleKind kind, const ScheduleShape& shape) {
  if (shape.pipeline_size < 1) MERIDIAN_FAIL("pipeline: pp must be at least 1, got ", shape.pipeline_size);
  if (shape.micro_batches < 1) MERIDIAN_FAIL("pipeline: micro-batches must be at least 1, got ", shape.micro_batches);
  if (kind == ScheduleKind::interleaved) {
    if (shape.virtual_stages < 2)
      MERIDIAN_FAIL("pipeline: the interleaved schedule needs at least 2 virtual stages per rank, got ",
                    shape.virtual_stages);
    if (shape.micro_batches % shape.pipeline_size != 0)
      MERIDIAN_FAIL("pipeline: the interleaved schedule needs micro-batches (", shape.micro_batches,
                    ") divisible by pp (", shape.pipeline_size, ")");
  } else if (shape.virtual_stages != 1) {
    MERIDIAN_FAIL("pipeline: ", shape.virtual_stages, " virtual stages need the interleaved schedule, not ",
                  schedule_name(kind));
  }
}

std::vector<PipelineAction> build_schedule(ScheduleKind kind, const ScheduleShape& shape, int pp_rank) {
  check_schedule_shape(kind, shape);
  MERIDIAN_CHECK(pp_rank >= 0 && pp_rank < shape.pipeline_size, "build_schedule: rank ", pp_rank, " of ",
                 shape.pipeline_size);
  switch (kind) {
    case ScheduleKind::gpipe: return gpipe(shape);
    case ScheduleKind::one_f_one_b: return one_f_one_b(shape, pp_rank);
    case ScheduleKind::interleaved: return interleaved(shape, pp_rank);
    case ScheduleKind::zero_bubble_h1: return zero_bubble_h1(shape, pp_rank);
  }
  MERIDIAN_FAIL("build_schedule: unknown schedule");
}

std::string to_string(const PipelineAction& action) {
  const char* letter = action.pass == PassKind::forward          ? "F"
                       : action.pass == PassKind::backward_weight ? "W"
                                                                  : "B";
  std::string text(letter);
  text += std::to_string(action.micro_batch);
  if (action.chunk != 0) {
    text += '.';
    text += std::to_string(action.chunk);
  }
  return text;
}

}  // namespace meridian::parallel
