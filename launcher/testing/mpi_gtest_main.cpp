// main() for multi-rank GoogleTest programs: run them as `mpirun -np N program [gtest flags]`.
#include <cstdio>

#include "launcher/run_main.h"
#include "launcher/testing/mpi_test_environment.h"

namespace meridian::testing {
namespace {

launcher::Runtime* current_runtime = nullptr;

// Tests hang rather than fail when ranks disagree; a short timeout turns that into a message.
constexpr auto kTestCommTimeout = std::chrono::seconds(120);

// On ranks other than 0 the full GoogleTest report would repeat rank 0's; print only failures,
// with the rank, so that a failure on one rank alone is still visible.
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}

  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "rank %d: %s:%d: failure\n%s\n", rank_,
                 result.file_name() ? result.file_name() : "?", result.line_number(),
                 result.summary());
  }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (info.result()->Failed())
      std::fprintf(stderr, "rank %d: FAILED %s.%s\n", rank_, info.test_suite_name(), info.name());
  }

 private:
  int rank_;
};

}  // namespace

launcher::Runtime& runtime() {
  if (!current_runtime) throw Error("meridian::testing::runtime() used outside the test main");
  return *current_runtime;
}

comm::Communicator& world() { return *runtime().world(); }

}  // namespace meridian::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  return meridian::launcher::run_main(
      argc, argv, [](meridian::launcher::Runtime& runtime, int, char**) {
        meridian::testing::current_runtime = &runtime;
        runtime.watchdog()->set_timeout(meridian::testing::kTestCommTimeout);
        if (runtime.world_rank() != 0) {
          auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
          delete listeners.Release(listeners.default_result_printer());
          listeners.Append(new meridian::testing::RankFailurePrinter(runtime.world_rank()));
        }
        const int failed_here = RUN_ALL_TESTS() != 0 ? 1 : 0;
        // One verdict for the job: mpirun's exit status must not depend on which rank failed.
        meridian::Tensor failed = meridian::Tensor::full({1}, failed_here, meridian::DType::i32);
        runtime.world()->all_reduce(failed, meridian::comm::ReduceOp::max)->wait();
        meridian::testing::current_runtime = nullptr;
        return failed.data<int32_t>()[0];
      });
}
