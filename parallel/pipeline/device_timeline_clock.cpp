// The timeline's clock on a GPU: marks on the device's compute stream (ops/cuda/stream_clock.h).
#include "core/error.h"
#include "parallel/pipeline/timeline.h"

#if MERIDIAN_CUDA
#include "ops/cuda/stream_clock.h"
#endif

namespace meridian::parallel {

#if MERIDIAN_CUDA
namespace {

class ComputeStreamClock final : public TimelineClock {
 public:
  explicit ComputeStreamClock(int device_index) : clock_(device_index) {}
  int64_t anchor() override { return clock_.anchor(); }
  int64_t mark() override { return static_cast<int64_t>(clock_.mark()); }
  std::vector<int64_t> times() override { return clock_.times(); }

 private:
  ops::cuda::StreamClock clock_;
};

}  // namespace
#endif

std::unique_ptr<TimelineClock> device_timeline_clock(Device device) {
  if (!device.is_cuda()) return nullptr;
#if MERIDIAN_CUDA
  return std::make_unique<ComputeStreamClock>(device.index);
#else
  MERIDIAN_FAIL("a timeline on ", device.to_string(), ": this build has no CUDA backend");
#endif
}

}  // namespace meridian::parallel
