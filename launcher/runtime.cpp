#include "launcher/runtime.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "launcher/abort_job.h"
#include "launcher/device_binding.h"
#include "launcher/log.h"
#include "launcher/stop_signals.h"
#include "parallel/comm/mpi_check.h"
#include "parallel/comm/mpi_communicator.h"

namespace meridian::launcher {
namespace {

std::atomic<bool> runtime_exists{false};

constexpr auto kDefaultCommTimeout = std::chrono::seconds(300);
constexpr auto kDefaultStopGrace = std::chrono::seconds(60);
// How long ranks wait for each other after a usage error before concluding it was not uniform.
constexpr auto kUsageErrorAgreement = std::chrono::seconds(10);

const char* thread_level_name(int level) {
  switch (level) {
    case MPI_THREAD_SINGLE:
      return "MPI_THREAD_SINGLE";
    case MPI_THREAD_FUNNELED:
      return "MPI_THREAD_FUNNELED";
    case MPI_THREAD_SERIALIZED:
      return "MPI_THREAD_SERIALIZED";
    case MPI_THREAD_MULTIPLE:
      return "MPI_THREAD_MULTIPLE";
    default:
      return "an unknown thread level";
  }
}

}  // namespace

Runtime::Runtime(int& argc, char**& argv) {
  if (runtime_exists.exchange(true))
    MERIDIAN_FAIL("a Runtime already exists: MPI is initialised once per process");
  // Before MPI_Init: MPI's own threads must inherit the blocked stop signals.
  StopSignals::block_in_this_thread();
  // A waiting comm thread should yield its core to the compute thread: ranks and their comm
  // threads outnumber cores on small machines. Measured with the overlap run of comm_bench; a
  // value the user set (environment, mpirun --mca) wins.
  setenv("OMPI_MCA_mpi_yield_when_idle", "1", /*overwrite=*/0);

  int provided = MPI_THREAD_SINGLE;
  MERIDIAN_MPI_CHECK(MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided));
  MERIDIAN_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  MERIDIAN_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &world_rank_));
  MERIDIAN_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world_size_));
  if (provided < MPI_THREAD_MULTIPLE)
    MERIDIAN_FAIL("MPI provides only ", thread_level_name(provided),
                  "; Meridian needs MPI_THREAD_MULTIPLE (its comm threads call MPI concurrently). "
                  "Use an MPI built with thread support (Open MPI: --enable-mpi-thread-multiple)");

  MPI_Comm node = MPI_COMM_NULL;
  MERIDIAN_MPI_CHECK(
      MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, world_rank_, MPI_INFO_NULL, &node));
  MERIDIAN_MPI_CHECK(MPI_Comm_rank(node, &local_rank_));
  MERIDIAN_MPI_CHECK(MPI_Comm_size(node, &local_size_));
  MERIDIAN_MPI_CHECK(MPI_Comm_free(&node));

  char name[MPI_MAX_PROCESSOR_NAME] = {};
  int name_length = 0;
  MERIDIAN_MPI_CHECK(MPI_Get_processor_name(name, &name_length));
  hostname_.assign(name, static_cast<size_t>(name_length));

  configure_logging(world_rank_, std::nullopt);
  watchdog_ = std::make_shared<comm::Watchdog>(kDefaultCommTimeout);
  watchdog_->set_timeout_handler([](const std::string& message) { abort_job(message, 1); });
  world_ = comm::create_mpi_world_communicator(watchdog_);
  stop_signals_ = std::make_unique<StopSignals>(
      kDefaultStopGrace, [](const std::string& message, int code) { abort_job(message, code); });
}

Runtime::~Runtime() {
  stop_signals_.reset();
  world_.reset();  // stops the world's comm thread and frees its MPI communicator
  watchdog_.reset();
  if (const int status = MPI_Finalize(); status != MPI_SUCCESS)
    std::fprintf(stderr, "rank %d: warning: MPI_Finalize failed (MPI error %d)\n", world_rank_,
                 status);
  runtime_exists.store(false);
}

void Runtime::configure(const ParallelConfig& config) {
  watchdog_->set_timeout(config.comm_timeout);
  stop_signals_->set_grace_period(config.stop_grace);
  configure_logging(world_rank_, config.log_dir);
  device_ = bind_device(config.device, world_rank_, local_rank_, hostname_);
}

bool Runtime::stop_requested() const { return stop_signals_->stop_requested(); }

bool Runtime::agree_to_stop() {
  Tensor flag = Tensor::full({1}, stop_requested() ? 1.0 : 0.0, DType::i32);
  world_->all_reduce(flag, comm::ReduceOp::max)->wait();
  return flag.data<int32_t>()[0] != 0;
}

void Runtime::finish_after_usage_error(const std::string& message) {
  if (world_rank_ == 0) {
    std::fprintf(stderr, "error: %s\n", message.c_str());
    std::fflush(stderr);
  }
  // MPI_COMM_WORLD itself, not the world Communicator: its queue may hold operations that other
  // ranks will never issue, and this barrier must not wait behind them.
  MPI_Request request = MPI_REQUEST_NULL;
  MERIDIAN_MPI_CHECK(MPI_Ibarrier(MPI_COMM_WORLD, &request));
  const auto deadline = std::chrono::steady_clock::now() + kUsageErrorAgreement;
  int arrived = 0;
  while (!arrived) {
    MERIDIAN_MPI_CHECK(MPI_Test(&request, &arrived, MPI_STATUS_IGNORE));
    if (arrived) break;
    if (std::chrono::steady_clock::now() > deadline)
      abort_job(detail::concat(message, " (other ranks did not report the same error; aborting)"),
                2);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace meridian::launcher
