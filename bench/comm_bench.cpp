// comm_bench: how fast the collectives run, in nccl-tests' terms.
//
// For each collective and each available backend: a line naming them, then one row per size with
// the median time over --iters runs (each rank's time, the slowest rank per run) and the
// bandwidths: algbw = size / time; busbw = algbw · 2(n−1)/n for all_reduce, · (n−1)/n for
// all_gather and reduce_scatter, · 1 for broadcast (the traffic per link of an optimal algorithm,
// comparable across rank counts). "size" is the whole buffer: the all_reduce / broadcast tensor,
// the all_gather output, the reduce_scatter input.
//
// The all_reduce section is measured interleaved with a raw MPI_Allreduce on the same buffer
// (run i of both back to back), so the Communicator's overhead shows as a ratio in the same run.
// The overlap section times a compute phase alone, a series of gradient-bucket all_reduces alone,
// and both together (all_reduces issued during the compute, waited for at the end), once with
// arithmetic on the rank's core and once with the core idle (as under GPU compute).
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cxxopts.hpp>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "launcher/run_main.h"
#include "launcher/usage_error.h"
#include "parallel/comm/communicator.h"
#include "parallel/comm/mpi_check.h"

#if MERIDIAN_HAS_NCCL
#include <cuda_runtime_api.h>

#include "parallel/comm/nccl_communicator.h"
#endif

namespace {

using namespace meridian;
using Clock = std::chrono::steady_clock;

enum class Collective { all_reduce, all_gather, reduce_scatter, broadcast };
constexpr Collective kCollectives[] = {Collective::all_reduce, Collective::all_gather,
                                       Collective::reduce_scatter, Collective::broadcast};

const char* collective_name(Collective collective) {
  switch (collective) {
    case Collective::all_reduce:
      return "all_reduce";
    case Collective::all_gather:
      return "all_gather";
    case Collective::reduce_scatter:
      return "reduce_scatter";
    case Collective::broadcast:
      return "broadcast";
  }
  return "?";
}

double bus_factor(Collective collective, int ranks) {
  const double n = ranks;
  switch (collective) {
    case Collective::all_reduce:
      return 2.0 * (n - 1) / n;
    case Collective::all_gather:
    case Collective::reduce_scatter:
      return (n - 1) / n;
    case Collective::broadcast:
      return 1.0;
  }
  return 1.0;
}

size_t parse_bytes(const std::string& text) {
  size_t end = 0;
  const double value = std::stod(text, &end);
  const std::string unit = text.substr(end);
  double scale = 1;
  if (unit == "K" || unit == "KB")
    scale = 1024.0;
  else if (unit == "M" || unit == "MB")
    scale = 1024.0 * 1024.0;
  else if (unit == "G" || unit == "GB")
    scale = 1024.0 * 1024.0 * 1024.0;
  else if (!unit.empty())
    MERIDIAN_USAGE_ERROR("cannot read the size ", text, " (use e.g. 4K, 256M)");
  return static_cast<size_t>(value * scale);
}

struct Settings {
  size_t min_bytes;
  size_t max_bytes;
  int step_factor;
  int iters;
  int warmup;
  bool overlap;
};

struct Row {
  size_t bytes;
  int64_t count;
  double seconds;
};

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// Per run, the slowest rank's time (a collective is as slow as its slowest member).
std::vector<double> slowest_over_ranks(std::vector<double> seconds, MPI_Comm comm) {
  MERIDIAN_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, seconds.data(), static_cast<int>(seconds.size()),
                                   MPI_DOUBLE, MPI_MAX, comm));
  return seconds;
}

double time_once(MPI_Comm sync, const std::function<void()>& operation) {
  MERIDIAN_MPI_CHECK(MPI_Barrier(sync));
  const auto start = Clock::now();
  operation();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::vector<size_t> sizes(const Settings& settings) {
  std::vector<size_t> out;
  for (size_t bytes = settings.min_bytes; bytes <= settings.max_bytes;
       bytes *= static_cast<size_t>(settings.step_factor))
    out.push_back(bytes);
  return out;
}

void print_section(const char* collective_label, const char* backend, const std::vector<Row>& rows,
                   double factor) {
  std::printf("# collective %s, backend %s\n", collective_label, backend);
  std::printf("# %12s %12s %6s %12s %12s %12s\n", "size_B", "count", "dtype", "time_us",
              "algbw_GBps", "busbw_GBps");
  for (const Row& row : rows) {
    const double algbw = static_cast<double>(row.bytes) / row.seconds / 1e9;
    std::printf("  %12zu %12lld %6s %12.1f %12.3f %12.3f\n", row.bytes,
                static_cast<long long>(row.count), "f32", row.seconds * 1e6, algbw, algbw * factor);
  }
  std::fflush(stdout);
}

// The tensors one collective needs at `bytes` (see the size convention above).
struct Buffers {
  Tensor input;
  Tensor output;
  int64_t count;  // elements of the whole buffer
};

Buffers make_buffers(Collective collective, size_t bytes, int ranks,
                     const std::function<Tensor(int64_t)>& allocate) {
  int64_t count = static_cast<int64_t>(bytes / sizeof(float));
  if (collective == Collective::all_gather || collective == Collective::reduce_scatter)
    count = count / ranks * ranks;  // whole chunks per rank
  switch (collective) {
    case Collective::all_reduce:
    case Collective::broadcast:
      return {allocate(count), Tensor(), count};
    case Collective::all_gather:
      return {allocate(count / ranks), allocate(count), count};
    case Collective::reduce_scatter:
      return {allocate(count), allocate(count / ranks), count};
  }
  return {};
}

comm::WorkHandle launch(comm::Communicator& group, Collective collective, Buffers& buffers) {
  switch (collective) {
    case Collective::all_reduce:
      return group.all_reduce(buffers.input, comm::ReduceOp::sum);
    case Collective::all_gather:
      return group.all_gather(buffers.input, buffers.output);
    case Collective::reduce_scatter:
      return group.reduce_scatter(buffers.input, buffers.output, comm::ReduceOp::sum);
    case Collective::broadcast:
      return group.broadcast(buffers.input, 0);
  }
  return nullptr;
}

void bench_mpi(launcher::Runtime& runtime, const Settings& settings, MPI_Comm sync) {
  comm::Communicator& world = *runtime.world();
  const int ranks = world.size();
  const bool print = runtime.world_rank() == 0;
  for (Collective collective : kCollectives) {
    std::vector<Row> comm_rows;
    std::vector<Row> raw_rows;
    for (size_t bytes : sizes(settings)) {
      Buffers buffers = make_buffers(collective, bytes, ranks,
                                     [](int64_t count) { return Tensor::zeros({count}); });
      // Run i of the Communicator and run i of raw MPI back to back: both see the same machine.
      const bool with_raw = collective == Collective::all_reduce;
      std::vector<double> comm_times;
      std::vector<double> raw_times;
      for (int run = 0; run < settings.warmup + settings.iters; ++run) {
        const double comm_time =
            time_once(sync, [&] { launch(world, collective, buffers)->wait(); });
        double raw_time = 0.0;
        if (with_raw)
          raw_time = time_once(sync, [&] {
            MERIDIAN_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buffers.input.raw_data(),
                                             static_cast<int>(buffers.count), MPI_FLOAT, MPI_SUM,
                                             sync));
          });
        if (run < settings.warmup) continue;
        comm_times.push_back(comm_time);
        raw_times.push_back(raw_time);
      }
      const size_t actual_bytes = static_cast<size_t>(buffers.count) * sizeof(float);
      comm_rows.push_back(
          {actual_bytes, buffers.count, median(slowest_over_ranks(comm_times, sync))});
      if (with_raw)
        raw_rows.push_back(
            {actual_bytes, buffers.count, median(slowest_over_ranks(raw_times, sync))});
    }
    if (!print) continue;
    const double factor = bus_factor(collective, ranks);
    print_section(collective_name(collective), "mpi", comm_rows, factor);
    if (raw_rows.empty()) continue;
    print_section(collective_name(collective), "raw_mpi (MPI_Allreduce called directly)", raw_rows,
                  factor);
    std::printf("# all_reduce: Communicator (mpi) busbw as a share of raw MPI_Allreduce busbw\n");
    std::printf("# %12s %14s %14s %8s\n", "size_B", "mpi_busbw", "raw_busbw", "ratio");
    for (size_t i = 0; i < comm_rows.size(); ++i)
      std::printf("  %12zu %14.3f %14.3f %7.1f%%\n", comm_rows[i].bytes,
                  comm_rows[i].bytes / comm_rows[i].seconds / 1e9 * factor,
                  raw_rows[i].bytes / raw_rows[i].seconds / 1e9 * factor,
                  100.0 * raw_rows[i].seconds / comm_rows[i].seconds);
    std::fflush(stdout);
  }
}

// Ping-pong between world ranks 0 and 1 (pipeline stages exchange activations this way): the
// time of one one-way transfer, through the Communicator and with raw MPI_Send/MPI_Recv.
void bench_point_to_point(launcher::Runtime& runtime, const Settings& settings, MPI_Comm sync) {
  comm::Communicator& world = *runtime.world();
  if (world.size() < 2) return;
  const int rank = world.rank();
  std::vector<Row> comm_rows;
  std::vector<Row> raw_rows;
  for (size_t bytes : sizes(settings)) {
    const int64_t count = static_cast<int64_t>(bytes / sizeof(float));
    Tensor message = Tensor::zeros({count});
    auto comm_round_trip = [&] {
      if (rank == 0) {
        world.send(message, 1, 0)->wait();
        world.recv(message, 1, 0)->wait();
      } else if (rank == 1) {
        world.recv(message, 0, 0)->wait();
        world.send(message, 0, 0)->wait();
      }
    };
    auto raw_round_trip = [&] {
      const int size = static_cast<int>(count);
      if (rank == 0) {
        MERIDIAN_MPI_CHECK(MPI_Send(message.raw_data(), size, MPI_FLOAT, 1, 0, sync));
        MERIDIAN_MPI_CHECK(
            MPI_Recv(message.raw_data(), size, MPI_FLOAT, 1, 0, sync, MPI_STATUS_IGNORE));
      } else if (rank == 1) {
        MERIDIAN_MPI_CHECK(
            MPI_Recv(message.raw_data(), size, MPI_FLOAT, 0, 0, sync, MPI_STATUS_IGNORE));
        MERIDIAN_MPI_CHECK(MPI_Send(message.raw_data(), size, MPI_FLOAT, 0, 0, sync));
      }
    };
    std::vector<double> comm_times;
    std::vector<double> raw_times;
    for (int run = 0; run < settings.warmup + settings.iters; ++run) {
      const double comm_time = time_once(sync, comm_round_trip) / 2;
      const double raw_time = time_once(sync, raw_round_trip) / 2;
      if (run < settings.warmup) continue;
      comm_times.push_back(comm_time);
      raw_times.push_back(raw_time);
    }
    comm_rows.push_back({bytes, count, median(slowest_over_ranks(comm_times, sync))});
    raw_rows.push_back({bytes, count, median(slowest_over_ranks(raw_times, sync))});
  }
  if (rank != 0) return;
  print_section("send/recv (ping-pong rank 0 <-> 1, one way)", "mpi", comm_rows, 1.0);
  print_section("send/recv (ping-pong rank 0 <-> 1, one way)", "raw_mpi (MPI_Send/MPI_Recv)",
                raw_rows, 1.0);
}

// A fixed amount of single-threaded arithmetic, the stand-in for a backward pass.
void compute(std::vector<float>& scratch, int repeats) {
  for (int r = 0; r < repeats; ++r)
    for (float& value : scratch) value = value * 0.999f + 0.001f;
}

// The compute phase of the overlap measurement: either arithmetic on this rank's core (CPU
// training: nothing is idle for the comm thread to use) or the core idling for the same time (the
// host's view of GPU training, where the compute runs on the device).
enum class ComputeKind { arithmetic, idle };

void bench_overlap(launcher::Runtime& runtime, const Settings& settings, MPI_Comm sync) {
  comm::Communicator& world = *runtime.world();
  constexpr int kBuckets = 8;
  constexpr int64_t kBucketElements = (int64_t{25} << 20) / 4;  // 25 MB, the DDP default
  std::vector<Tensor> buckets;
  for (int b = 0; b < kBuckets; ++b) buckets.push_back(Tensor::zeros({kBucketElements}));
  std::vector<float> scratch(1 << 20, 1.0f);  // 4 MB, cache-resident arithmetic
  int compute_per_bucket = 1;
  std::chrono::microseconds idle_per_bucket{0};
  ComputeKind kind = ComputeKind::arithmetic;

  auto compute_one_bucket = [&] {
    if (kind == ComputeKind::arithmetic)
      compute(scratch, compute_per_bucket);
    else
      std::this_thread::sleep_for(idle_per_bucket);
  };
  auto compute_only = [&] {
    for (int b = 0; b < kBuckets; ++b) compute_one_bucket();
  };
  auto comm_only = [&] {
    std::vector<comm::WorkHandle> works;
    for (Tensor& bucket : buckets) works.push_back(world.all_reduce(bucket, comm::ReduceOp::sum));
    for (auto& work : works) work->wait();
  };
  auto overlapped = [&] {
    // As DDP does: a bucket's all_reduce starts when "backward" has produced it; wait at the end.
    std::vector<comm::WorkHandle> works;
    for (Tensor& bucket : buckets) {
      compute_one_bucket();
      works.push_back(world.all_reduce(bucket, comm::ReduceOp::sum));
    }
    for (auto it = works.rbegin(); it != works.rend(); ++it) (*it)->wait();
  };

  // Calibrate the compute to last about as long as the communication: overlap matters most then.
  time_once(sync, comm_only);
  const double comm_estimate = median(slowest_over_ranks(
      {time_once(sync, comm_only), time_once(sync, comm_only), time_once(sync, comm_only)}, sync));
  constexpr int kCalibrationPasses = 8;
  compute_per_bucket = kCalibrationPasses;
  time_once(sync, compute_only);
  const double one_pass = time_once(sync, compute_only) / (kBuckets * kCalibrationPasses);
  compute_per_bucket = std::max(1, static_cast<int>(comm_estimate / kBuckets / one_pass));
  MERIDIAN_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &compute_per_bucket, 1, MPI_INT, MPI_MAX, sync));
  idle_per_bucket = std::chrono::microseconds(static_cast<int64_t>(comm_estimate / kBuckets * 1e6));

  const int runs = std::max(5, settings.iters / 4);
  if (runtime.world_rank() == 0) {
    std::printf(
        "# overlap: %d x 25 MB all_reduce (mpi), one issued after each compute slice, all waited "
        "at the end; median of %d\n",
        kBuckets, runs);
    // hidden: how much of the shorter phase disappeared from the total (100% = perfect overlap).
    std::printf("# %12s %12s %12s %12s %12s %12s\n", "compute", "compute_ms", "comm_ms",
                "both_ms", "serial_ms", "hidden_pct");
  }
  for (ComputeKind compute_kind : {ComputeKind::arithmetic, ComputeKind::idle}) {
    kind = compute_kind;
    std::vector<double> compute_times, comm_times, both_times;
    for (int run = 0; run < runs; ++run) {
      compute_times.push_back(time_once(sync, compute_only));
      comm_times.push_back(time_once(sync, comm_only));
      both_times.push_back(time_once(sync, overlapped));
    }
    const double c = median(slowest_over_ranks(compute_times, sync));
    const double m = median(slowest_over_ranks(comm_times, sync));
    const double b = median(slowest_over_ranks(both_times, sync));
    if (runtime.world_rank() != 0) continue;
    const double hidden = (c + m - b) / std::min(c, m) * 100.0;
    std::printf("  %12s %12.1f %12.1f %12.1f %12.1f %11.1f%%\n",
                kind == ComputeKind::arithmetic ? "arithmetic" : "idle", c * 1e3, m * 1e3,
                b * 1e3, (c + m) * 1e3, hidden);
  }
  std::fflush(stdout);
}

#if MERIDIAN_HAS_NCCL
void bench_nccl(launcher::Runtime& runtime, const Settings& settings, MPI_Comm sync) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess) {
    cudaGetLastError();
    devices = 0;
  }
  int usable = runtime.local_rank() < devices ? 1 : 0;
  MERIDIAN_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &usable, 1, MPI_INT, MPI_MIN, sync));
  if (!usable) {
    if (runtime.world_rank() == 0)
      std::printf(
          "# backend nccl: skipped (needs one visible GPU per rank; %d visible on rank 0)\n",
          devices);
    return;
  }
  const int device = runtime.local_rank();
  auto nccl = comm::NcclCommunicator::create(
      runtime.world(), comm::NcclOptions{device, nullptr, runtime.watchdog()});
  auto allocate = [device](int64_t count) {
    void* memory = nullptr;
    const size_t bytes = static_cast<size_t>(std::max<int64_t>(count, 1)) * sizeof(float);
    if (cudaMalloc(&memory, bytes) != cudaSuccess)
      MERIDIAN_FAIL("cudaMalloc of ", bytes, " failed");
    if (cudaMemset(memory, 0, bytes) != cudaSuccess) MERIDIAN_FAIL("cudaMemset failed");
    auto storage = std::make_shared<Storage>(memory, bytes, Device::cuda(device),
                                             [](void* pointer) { cudaFree(pointer); });
    return Tensor::from_storage(storage, {count}, DType::f32);
  };
  for (Collective collective : kCollectives) {
    std::vector<Row> rows;
    for (size_t bytes : sizes(settings)) {
      Buffers buffers = make_buffers(collective, bytes, nccl->size(), allocate);
      std::vector<double> times;
      for (int run = 0; run < settings.warmup + settings.iters; ++run) {
        const double seconds = time_once(sync, [&] {
          launch(*nccl, collective, buffers)->wait();
          if (cudaStreamSynchronize(nccl->compute_stream()) != cudaSuccess)
            MERIDIAN_FAIL("cudaStreamSynchronize failed");
        });
        if (run >= settings.warmup) times.push_back(seconds);
      }
      rows.push_back({static_cast<size_t>(buffers.count) * sizeof(float), buffers.count,
                      median(slowest_over_ranks(times, sync))});
    }
    if (runtime.world_rank() == 0)
      print_section(collective_name(collective), "nccl", rows,
                    bus_factor(collective, nccl->size()));
  }
}
#endif

int run(launcher::Runtime& runtime, int argc, char** argv) {
  cxxopts::Options options("comm_bench", "Collective bandwidth per backend (nccl-tests style)");
  // clang-format off
  options.add_options()
      ("min-bytes", "smallest size (e.g. 4K)", cxxopts::value<std::string>()->default_value("4K"))
      ("max-bytes", "largest size (e.g. 256M)",
       cxxopts::value<std::string>()->default_value("256M"))
      ("step-factor", "size multiplier between rows (2 or 4)",
       cxxopts::value<int>()->default_value("4"))
      ("iters", "timed runs per size (the median is reported)",
       cxxopts::value<int>()->default_value("20"))
      ("warmup", "untimed runs per size first", cxxopts::value<int>()->default_value("5"))
      ("no-overlap", "skip the compute/communication overlap measurement")
      ("h,help", "this help");
  // clang-format on
  const auto parsed = options.parse(argc, argv);
  if (parsed.count("help")) {
    if (runtime.world_rank() == 0) std::printf("%s\n", options.help().c_str());
    return 0;
  }
  Settings settings{parse_bytes(parsed["min-bytes"].as<std::string>()),
                    parse_bytes(parsed["max-bytes"].as<std::string>()),
                    parsed["step-factor"].as<int>(),
                    parsed["iters"].as<int>(),
                    parsed["warmup"].as<int>(),
                    parsed.count("no-overlap") == 0};
  if (settings.min_bytes < 4 || settings.min_bytes > settings.max_bytes)
    MERIDIAN_USAGE_ERROR("--min-bytes must be at least 4 and at most --max-bytes");
  if (settings.step_factor < 2) MERIDIAN_USAGE_ERROR("--step-factor must be at least 2");
  if (settings.iters < 1 || settings.warmup < 0) MERIDIAN_USAGE_ERROR("--iters must be positive");

  MPI_Comm sync = MPI_COMM_NULL;  // the bench's own: barriers, timing reductions, raw baseline
  MERIDIAN_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &sync));
  if (runtime.world_rank() == 0) {
    char version[MPI_MAX_LIBRARY_VERSION_STRING] = {};
    int length = 0;
    MERIDIAN_MPI_CHECK(MPI_Get_library_version(version, &length));
    std::string first_line(version, static_cast<size_t>(length));
    first_line = first_line.substr(0, first_line.find_first_of(",\n"));
    std::printf(
        "# comm_bench: %d ranks (%d on this node), %s, dtype f32, median of %d runs after "
        "%d warm-up\n",
        runtime.world_size(), runtime.local_size(), first_line.c_str(), settings.iters,
        settings.warmup);
  }
  bench_mpi(runtime, settings, sync);
  bench_point_to_point(runtime, settings, sync);
#if MERIDIAN_HAS_NCCL
  bench_nccl(runtime, settings, sync);
#else
  if (runtime.world_rank() == 0) std::printf("# backend nccl: not built (no CUDA backend)\n");
#endif
  if (settings.overlap) bench_overlap(runtime, settings, sync);
  MERIDIAN_MPI_CHECK(MPI_Comm_free(&sync));
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return meridian::launcher::run_main(argc, argv, run); }
