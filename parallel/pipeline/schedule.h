#pragma once
// Pipeline schedules: the order in which one rank runs the passes of one training step.
//
// Every schedule is a per-rank list of actions; a rank runs its list in order, and a pass that
// needs data from a neighbouring stage waits for it. A list is valid when the lists of all ranks
// together can run to the end (schedule_simulation.h checks that, and what bubble it leaves).
//
//   gpipe        all M forwards, then all M backwards (every micro-batch's activations live at once)
//   1f1b         pp − rank − 1 warm-up forwards, then one forward / one backward, then the rest of
//                the backwards: at most pp − rank micro-batches alive (PipeDream-Flush, Megatron)
//   interleaved  1F1B over V chunks per rank (Megatron's interleaved schedule): micro-batches go
//                through the chunks in groups of pp; needs M % pp == 0; bubble ÷ V
//   zb-h1        1F1B with each backward split into B (input gradients, on the critical path) and W
//                (weight gradients), W delayed by `rank` steps so that every stage keeps pp
//                micro-batches in flight and the W passes fill the cool-down (Qi et al. 2023, ZB-H1)
//
// With equal F, B, W costs, the bubble fraction is (p−1)/(m+p−1) for gpipe and 1f1b,
// (p−1)/(V·m+p−1) for interleaved and (p−1)/(3m+p−1) for zb-h1 (m ≥ p).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace meridian::parallel {

enum class ScheduleKind : uint8_t { gpipe, one_f_one_b, interleaved, zero_bubble_h1 };

std::string_view schedule_name(ScheduleKind kind);  // "gpipe", "1f1b", "interleaved", "zb-h1"
// Throws meridian::Error naming the accepted names.
ScheduleKind parse_schedule_kind(std::string_view name);
// Whether the schedule splits backward into B and W passes (deferred weight gradients).
bool splits_backward(ScheduleKind kind);

enum class PassKind : uint8_t {
  forward,
  backward,         // input and weight gradients together
  backward_input,   // B: input gradients; weight gradients queued for the W pass
  backward_weight,  // W: the queued weight gradients
};
std::string_view pass_name(PassKind kind);  // "forward", "backward", "backward_input", "backward_weight"

struct PipelineAction {
  PassKind pass;
  int chunk;        // which of the rank's V model chunks (global stage chunk·pp + rank)
  int micro_batch;  // 0 .. M−1
  bool operator==(const PipelineAction&) const = default;
};

struct ScheduleShape {
  int pipeline_size = 1;   // pp
  int virtual_stages = 1;  // V: chunks per rank
  int micro_batches = 1;   // M
  int stages() const { return pipeline_size * virtual_stages; }
};

// Throws meridian::Error when the shape does not suit the schedule: interleaved needs V ≥ 2 and
// M % pp == 0; the others need V == 1; every schedule needs pp ≥ 1 and M ≥ 1.
void check_schedule_shape(ScheduleKind kind, const ScheduleShape& shape);

// The action list of rank `pp_rank` (checks the shape first).
std::vector<PipelineAction> build_schedule(ScheduleKind kind, const ScheduleShape& shape, int pp_rank);

std::string to_string(const PipelineAction& action);  // "F3", "B3", "W3"; "F3.1" for chunk 1

}  // namespace meridian::parallel
