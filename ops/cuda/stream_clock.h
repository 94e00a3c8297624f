#pragma once
// Times of a stream's progress, for timelines of GPU work (the pipeline's, parallel/pipeline/timeline.h).
// The host issues kernels long before the GPU runs them, so host clocks around a pass time its
// launches; a mark here is an event recorded on the stream instead, and its time is when the GPU
// reaches that point of the stream's work — after the kernels issued before it and after any wait
// for another stream (a transfer) put in front of it.
//
//   StreamClock clock(device);
//   const int64_t start_ns = clock.anchor();   // the host's steady clock when the stream passed here
//   const size_t a = clock.mark();  /* kernels */  const size_t b = clock.mark();
//   std::vector<int64_t> ns = clock.times();  // waits for mark b; ns[b] - ns[a] is the kernels' time
//
// Times are nanoseconds on the host's steady clock (anchor + the events' elapsed time), so marks of
// several processes on one machine line up as host times do. Event timing resolves about 0.5 µs.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ops/cuda/stream.h"

namespace meridian::ops::cuda {

class StreamClock {
 public:
  // Marks on the compute stream of `device_index`.
  explicit StreamClock(int device_index);
  ~StreamClock();
  StreamClock(const StreamClock&) = delete;
  StreamClock& operator=(const StreamClock&) = delete;

  // Records the reference mark, waits until the stream has passed it and returns the host's
  // steady-clock nanoseconds at that moment (exact when the stream was idle, as it is at a step's
  // start). Forgets the marks made before; their numbers start again from 0.
  int64_t anchor();
  // Records a mark after the work issued on the stream so far; returns its number (0, 1, ... since
  // the anchor). Needs an anchor first.
  size_t mark();
  // Waits until the stream has passed the last mark; returns every mark's time (steady-clock ns,
  // indexed by number). Marks stay valid until the next anchor, so this may be called again after
  // more marks.
  std::vector<int64_t> times();

 private:
  int device_;
  cudaStream_t stream_;
  cudaEvent_t reference_ = nullptr;
  int64_t anchor_ns_ = 0;
  bool anchored_ = false;
  std::vector<cudaEvent_t> events_;  // a pool, reused after each anchor
  size_t used_ = 0;
};

}  // namespace meridian::ops::cuda
