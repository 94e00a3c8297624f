// Host emulation of the CUDA runtime: fibers for CUDA threads, host memory for device memory.
#include "emu_cuda.h"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#define EMU_ASAN 1
#else
#define EMU_ASAN 0
#endif

// The race check (emu_cuda.h) drives ThreadSanitizer through its public interface. This file is built
// without ThreadSanitizer's instrumentation under it: the scheduler's bookkeeping (who arrived at a
// barrier, whose turn it is) is shared by the fibers by design, and is not the kernels' memory.
#if EMU_RACE_CHECK
extern "C" {
void* __tsan_get_current_fiber();
void* __tsan_create_fiber(unsigned flags);
void __tsan_switch_to_fiber(void* fiber, unsigned flags);
void __tsan_set_fiber_name(void* fiber, const char* name);
void __tsan_acquire(void* addr);
void __tsan_release(void* addr);
void __tsan_ignore_thread_begin();
void __tsan_ignore_thread_end();
}
#endif

extern "C" void emu_ctx_switch(void** save_sp, void* new_sp);
asm(R"(
.text
.globl emu_ctx_switch
.type emu_ctx_switch,@function
emu_ctx_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size emu_ctx_switch, .-emu_ctx_switch
)");

namespace emu {
thread_local Fiber* cur = nullptr;

// The race check's synchronisation objects (only their addresses matter), fresh for each block so that
// nothing one block released reaches another: the block barrier's and each warp's __syncwarp's, two each,
// used by alternate barriers (a thread that ran on to the next barrier must not release into the sync
// object a thread still to leave the last one is about to acquire).
struct RaceSync {
  char block_barrier[2];
  char warp_barrier[32][2];
};

namespace {
// The launch's: the host releases `start` before any thread runs and each thread acquires it first; each
// thread releases `end` when it exits and the host acquires it after the last block.
struct LaunchSync {
  char start, end;
};

// Each CUDA thread's stack.
constexpr size_t kStackBytes = 256 * 1024;
constexpr size_t kPage = 4096;

// The scheduler's ThreadSanitizer fiber and the running launch's sync objects (race check).
thread_local void* g_scheduler_fiber = nullptr;
thread_local LaunchSync* g_launch_sync = nullptr;

#if EMU_RACE_CHECK
// ThreadSanitizer fibers for the CUDA threads, in sets used by blocks in turn. A fiber orders everything
// it runs (program order), so two blocks run by one set would be ordered thread by thread; with the sets
// in turn, only blocks a multiple of the number of sets apart are (blocks nearer each other share no
// fiber, so their races are reported). A fiber of its own per block would order nothing, but creating
// and destroying one costs more than running the thread. 8 sets for blocks of up to 256 threads, fewer
// for larger blocks (4 at 512, 2 at 1024), so that at most 4096 fibers exist: each holds a few memory
// mappings, and a process may have only about 65 000.
constexpr unsigned kRaceFiberSets = 8;
constexpr unsigned kMaxThreadsPerBlock = 1024;
unsigned race_fiber_set(unsigned block_number, unsigned threads) {
  const unsigned sets = std::clamp(2048u / threads, 2u, kRaceFiberSets);
  return block_number % sets;
}
thread_local std::vector<void*> g_race_fibers[kRaceFiberSets];
void* race_fiber(unsigned set, unsigned thread) {
  auto& fibers = g_race_fibers[set];
  while (fibers.size() <= thread) fibers.push_back(__tsan_create_fiber(0));
  return fibers[thread];
}
// Each fiber has a stack of its own, so no two fibers' locals ever share an address: one mapping per
// set, without guard pages (each would split the mapping in two).
char* race_fiber_stack(unsigned set, unsigned thread) {
  thread_local char* regions[kRaceFiberSets] = {};  // as the fibers: per host thread
  if (regions[set] == nullptr) {
    void* p = mmap(nullptr, size_t{kMaxThreadsPerBlock} * kStackBytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) { std::perror("mmap"); std::abort(); }
    regions[set] = static_cast<char*>(p);
  }
  return regions[set] + size_t{thread} * kStackBytes;
}
void race_release(void* sync) { __tsan_release(sync); }
void race_acquire(void* sync) { __tsan_acquire(sync); }
// Switches ThreadSanitizer's fiber with the emulator's, ordering nothing (the barriers do that).
void race_switch_to(void* fiber) { __tsan_switch_to_fiber(fiber, 1 /* __tsan_switch_to_fiber_no_sync */); }
void* race_current_fiber() { return __tsan_get_current_fiber(); }
std::unique_ptr<RaceSync> race_sync_for_block() { return std::make_unique<RaceSync>(); }
// The emulator's own writes into fresh memory (NaN fills): under it, an allocation also forgets what
// earlier owners of the addresses did, so a block's shared memory does not race with the last block's.
struct RaceIgnore {
  RaceIgnore() { __tsan_ignore_thread_begin(); }
  ~RaceIgnore() { __tsan_ignore_thread_end(); }
  RaceIgnore(const RaceIgnore&) = delete;
  RaceIgnore& operator=(const RaceIgnore&) = delete;
};
#else
void race_release(void*) {}
void race_acquire(void*) {}
void race_switch_to(void*) {}
void* race_current_fiber() { return nullptr; }
std::unique_ptr<RaceSync> race_sync_for_block() { return nullptr; }
struct RaceIgnore {
  RaceIgnore() {}  // user-provided: a scope guard, not an unused variable
  ~RaceIgnore() {}
};
#endif

thread_local void* sched_sp = nullptr;
thread_local Entry g_entry = nullptr;
thread_local void* g_closure = nullptr;
thread_local cudaError_t g_last_error = cudaSuccess;  // per host thread, as CUDA's
// The warp whose collective the running fiber just completed (-1: none), for the scheduler's
// warp-at-a-time order (EMU_REVERSE).
thread_local int g_released_warp = -1;
thread_local int g_device = 0;  // as CUDA's current device: per host thread, 0 at first

// EMU_DEVICES emulated GPUs (1 unless set): multi-rank jobs give each rank its own, as on a node.
int device_count() {
  static const int count = [] {
    const char* value = std::getenv("EMU_DEVICES");
    const int n = value != nullptr ? std::atoi(value) : 1;
    return n >= 1 ? n : 1;
  }();
  return count;
}
bool valid_device(int device) { return device >= 0 && device < device_count(); }
#if !EMU_RACE_CHECK  // (the race check's stacks: race_fiber_stack)
std::vector<char*> g_stacks;  // each kStackBytes + guard page below

char* stack_at(size_t i) {
  while (g_stacks.size() <= i) {
    void* p = mmap(nullptr, kStackBytes + kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) { std::perror("mmap"); std::abort(); }
    mprotect(p, kPage, PROT_NONE);
    g_stacks.push_back(static_cast<char*>(p) + kPage);
  }
  return g_stacks[i];
}
#endif

}  // namespace

namespace {
std::mutex g_warnings_mutex;
std::vector<std::string>& warned_in_order() { static auto* v = new std::vector<std::string>; return *v; }
}  // namespace

// Each warning once. With EMU_WARNINGS_FATAL set (as ctest runs the emulated tests) the first one ends the
// process: what the emulator warns about is undefined or a fault on a GPU.
void warn(const std::string& message) {
  static std::set<std::string> warned;
  static const bool fatal = std::getenv("EMU_WARNINGS_FATAL") != nullptr;
  std::lock_guard<std::mutex> lock(g_warnings_mutex);
  if (!warned.insert(message).second) return;
  warned_in_order().push_back(message);
  std::fprintf(stderr, "EMU WARNING: %s\n", message.c_str());
  if (fatal) {
    std::fprintf(stderr, "EMU: stopping (EMU_WARNINGS_FATAL is set)\n");
    std::fflush(stderr);
    std::_Exit(86);
  }
}

std::vector<std::string> warnings() {
  std::lock_guard<std::mutex> lock(g_warnings_mutex);
  return warned_in_order();
}

namespace {

void release_block_barrier(Block& b) {
  b.arrived = 0;
  b.generation++;
  for (auto& f : *b.fibers) if (f.state == 1) f.state = 0;
}
void release_warp(Block& b, unsigned w) {
  (*b.warps)[w].arrived = 0;
  (*b.warps)[w].generation++;
  g_released_warp = static_cast<int>(w);
  auto& fs = *b.fibers;
  for (unsigned i = w * 32; i < std::min<size_t>(fs.size(), w * 32 + 32); ++i) if (fs[i].state == 2) fs[i].state = 0;
}

void yield_to_scheduler() {
  Fiber* f = cur;
  race_switch_to(g_scheduler_fiber);
  emu_ctx_switch(&f->sp, sched_sp);
  cur = f;
}


}  // namespace

extern "C" void emu_fiber_main() {
  Fiber* f = cur;
  race_acquire(&g_launch_sync->start);
  g_entry(g_closure);
  race_release(&g_launch_sync->end);
  Block& b = *f->block;
  if (!f->async_copies.empty())
    warn(std::string("kernel ") + b.kernel_name + ": a thread exited with cp.async copies it never waited for");
  f->state = 3;
  b.live--;
  Warp& w = (*b.warps)[f->linear / 32];
  w.live--;
  if (b.arrived > 0 && b.arrived == b.live) release_block_barrier(b);
  if (w.arrived > 0 && w.arrived == w.live) {
    warn(std::string("kernel ") + b.kernel_name + ": a lane exited while its warp waited in a warp collective");
    release_warp(b, f->linear / 32);
  }
  race_switch_to(g_scheduler_fiber);
  emu_ctx_switch(&f->sp, sched_sp);
  std::abort();
}

void syncthreads(const char* file, unsigned line) {
  Block& b = *cur->block;
  if (b.arrived == 0) {
    b.barrier_file = file;
    b.barrier_line = line;
  } else if (line != b.barrier_line || std::strcmp(file, b.barrier_file) != 0) {
    warn(std::string("kernel ") + b.kernel_name + ": threads of a block wait at different __syncthreads calls (" +
         b.barrier_file + ":" + std::to_string(b.barrier_line) + " and " + file + ":" + std::to_string(line) +
         "; undefined on a GPU)");
  }
  // A warp's lanes must not be split between a warp collective and __syncthreads.
  void* const sync = b.race != nullptr ? &b.race->block_barrier[b.generation % 2] : nullptr;
  if (sync != nullptr) race_release(sync);
  b.arrived++;
  if (b.arrived == b.live) {
    release_block_barrier(b);
  } else {
    cur->state = 1;
    yield_to_scheduler();
  }
  if (sync != nullptr) race_acquire(sync);
}

void warp_sync(const char* what, unsigned mask, bool orders_memory) {
  Block& b = *cur->block;
  const unsigned wi = cur->linear / 32;
  Warp& w = (*b.warps)[wi];
  if (mask == 0xffffffffu && w.live != 32)
    warn(std::string("kernel ") + b.kernel_name + ": " + what + " with a full mask while the warp has " +
         std::to_string(w.live) + " live lanes (of " + std::to_string(w.exists) + "): undefined on a GPU");
  if (mask != 0xffffffffu) warn(std::string("kernel ") + b.kernel_name + ": " + what + " with a partial mask (emulated as the live lanes)");
  void* const sync = orders_memory && b.race != nullptr ? &b.race->warp_barrier[wi][w.generation % 2] : nullptr;
  if (sync != nullptr) race_release(sync);
  w.arrived++;
  if (w.arrived == w.live) {
    release_warp(b, wi);
  } else {
    cur->state = 2;
    yield_to_scheduler();
  }
  if (sync != nullptr) race_acquire(sync);
}

bool reverse_order() {
  static const bool reverse = std::getenv("EMU_REVERSE") != nullptr;
  return reverse;
}

void device_trap(const char* what) {
  std::fprintf(stderr, "EMU DEVICE FAULT: %s\n", what);
  std::abort();
}

void set_launch_error(cudaError_t e) { g_last_error = e; }

// The first thread of a block to reach a static __shared__ declaration allocates the block's array and
// fills it with 0xFF (NaN); the block's end frees it (free_static_shared).
void* static_shared_bytes(const void* key, size_t bytes, size_t alignment) {
  Block& b = *cur->block;
  for (const auto& [declaration, p] : b.statics)
    if (declaration == key) return p;
  RaceIgnore ignore;
  alignment = std::max<size_t>(alignment, 16);
  void* p = std::aligned_alloc(alignment, (std::max<size_t>(bytes, 1) + alignment - 1) / alignment * alignment);
  if (p == nullptr) { std::perror("aligned_alloc"); std::abort(); }
  std::memset(p, 0xFF, bytes);
  b.statics.emplace_back(key, p);
  return p;
}

namespace {
void free_static_shared(Block& b) {
  for (const auto& entry : b.statics) std::free(entry.second);
  b.statics.clear();
}
}  // namespace

namespace {
struct InFlight {
  uintptr_t begin, end;
  const char* what;
};
std::mutex g_in_flight_mutex;
std::map<uint64_t, InFlight> g_in_flight;
uint64_t g_next_in_flight = 1;

// The first transfer written in flight whose memory meets [begin, end), or nullptr (under g_in_flight_mutex).
const char* written_in_flight_locked(uintptr_t begin, uintptr_t end) {
  for (const auto& [id, range] : g_in_flight)
    if (begin < range.end && range.begin < end) return range.what;
  return nullptr;
}

void arm_reads_written_by_none_locked();  // with the reads in flight, below
}  // namespace

uint64_t begin_in_flight(const void* p, size_t bytes, const char* what) {
  std::lock_guard<std::mutex> lock(g_in_flight_mutex);
  const auto begin = reinterpret_cast<uintptr_t>(p);
  g_in_flight[g_next_in_flight] = {begin, begin + bytes, what};
  return g_next_in_flight++;
}

void end_in_flight(uint64_t id) {
  std::lock_guard<std::mutex> lock(g_in_flight_mutex);
  g_in_flight.erase(id);
  arm_reads_written_by_none_locked();
}

// bytes 0: only p itself (a kernel argument, whose extent the emulator does not know).
void check_not_in_flight(const void* p, size_t bytes, const std::string& user) {
  const auto begin = reinterpret_cast<uintptr_t>(p), end = begin + std::max<size_t>(bytes, 1);
  std::string clash;
  {
    std::lock_guard<std::mutex> lock(g_in_flight_mutex);
    if (const char* what = written_in_flight_locked(begin, end)) clash = what;
  }
  if (!clash.empty())
    warn(user + " touches device memory that " + clash + " on another stream is still writing (a race on a GPU: "
         "nothing orders it after the transfer)");
}

namespace {
struct ReadInFlight {
  uintptr_t begin, end;
  const char* what;
  std::vector<unsigned char> bytes;  // what the task will read; empty until armed
};
std::map<uint64_t, ReadInFlight> g_reads_in_flight;  // under g_in_flight_mutex

// Plain loops, not memcpy or memcmp, which the sanitizers intercept: reading a transfer's input is the
// emulator's own bookkeeping, even where the tensor's block went back to the caching allocator (which
// poisons it under AddressSanitizer) or a stream's thread writes beside it.
__attribute__((no_sanitize("address"), optimize("no-tree-loop-distribute-patterns")))
void copy_device_bytes(unsigned char* to, const unsigned char* from, size_t n) {
  for (size_t i = 0; i < n; ++i) to[i] = from[i];
}
__attribute__((no_sanitize("address"), optimize("no-tree-loop-distribute-patterns")))
bool same_device_bytes(const unsigned char* copy, const unsigned char* device, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (copy[i] != device[i]) return false;
  return true;
}

void arm_locked(ReadInFlight& r) {
  r.bytes.resize(r.end - r.begin);
  copy_device_bytes(r.bytes.data(), reinterpret_cast<const unsigned char*>(r.begin), r.bytes.size());
}

// Whether the memory changed since it was armed; the copy then takes the new bytes (one warning a write).
bool changed_locked(ReadInFlight& r) {
  const auto* device = reinterpret_cast<const unsigned char*>(r.begin);
  if (r.bytes.empty() || same_device_bytes(r.bytes.data(), device, r.bytes.size())) return false;
  arm_locked(r);
  return true;
}

std::string read_race(const std::string& writer, const char* what) {
  return writer + " wrote device memory that " + what + " on another stream is still reading (a race on a GPU: " +
         "nothing orders the write after the transfer)";
}

// What a queued task reads and a transfer before it wrote is final once the last such transfer has ended:
// a write after that and before the task is done races with the task on a GPU, so the copy is taken
// then, not only at the task's start (under g_in_flight_mutex).
void arm_reads_written_by_none_locked() {
  for (auto& [id, r] : g_reads_in_flight)
    if (r.bytes.empty() && written_in_flight_locked(r.begin, r.end) == nullptr) arm_locked(r);
}
}  // namespace

uint64_t begin_read_in_flight(const void* p, size_t bytes, const char* what) {
  std::lock_guard<std::mutex> lock(g_in_flight_mutex);
  const auto begin = reinterpret_cast<uintptr_t>(p);
  ReadInFlight r{begin, begin + bytes, what, {}};
  // An earlier task of the stream that writes this memory runs first: its result is what this one reads.
  if (written_in_flight_locked(r.begin, r.end) == nullptr) arm_locked(r);
  g_reads_in_flight.emplace(g_next_in_flight, std::move(r));
  return g_next_in_flight++;
}

// Still unarmed here only while a transfer of another stream writes the memory (a race that
// check_not_in_flight reports). A change before the start is a change before the end too:
// end_read_in_flight reports it.
void arm_read_in_flight(uint64_t id) {
  std::lock_guard<std::mutex> lock(g_in_flight_mutex);
  auto it = g_reads_in_flight.find(id);
  if (it != g_reads_in_flight.end() && it->second.bytes.empty()) arm_locked(it->second);
}

void end_read_in_flight(uint64_t id) {
  std::string clash;
  {
    std::lock_guard<std::mutex> lock(g_in_flight_mutex);
    auto it = g_reads_in_flight.find(id);
    if (it == g_reads_in_flight.end()) return;
    if (changed_locked(it->second)) clash = it->second.what;
    g_reads_in_flight.erase(it);
  }
  if (!clash.empty()) warn(read_race("work on another stream", clash.c_str()));
}

void check_reads_in_flight(const char* writer, const char* name, const void* written, size_t bytes) {
  std::string clash;
  {
    std::lock_guard<std::mutex> lock(g_in_flight_mutex);
    const auto begin = reinterpret_cast<uintptr_t>(written), end = begin + bytes;
    for (auto& [id, r] : g_reads_in_flight)
      if ((written == nullptr || (begin < r.end && r.begin < end)) && changed_locked(r)) {
        clash = r.what;
        break;
      }
  }
  if (!clash.empty()) warn(read_race(name ? std::string(writer) + " " + name : std::string(writer), clash.c_str()));
}

void check_freed_block(const void* p, size_t bytes) {
  const auto begin = reinterpret_cast<uintptr_t>(p), end = begin + bytes;
  std::string user;
  {
    std::lock_guard<std::mutex> lock(g_in_flight_mutex);
    if (const char* what = written_in_flight_locked(begin, end))
      user = std::string(what) + " on another stream still writes";
    else
      for (const auto& [id, r] : g_reads_in_flight)
        if (begin < r.end && r.begin < end) {
          user = std::string(r.what) + " on another stream still reads";
          break;
        }
  }
  if (!user.empty())
    warn("the caching allocator got back a block that " + user + ": its tensor was freed before the transfer " +
         "was done, so the block's next owner races with the transfer on a GPU (keep the tensor until the " +
         "transfer's event)");
}

void check_kernel_pointer(const char* kernel, int index, const void* p) {
  if (p == nullptr) return;
  if (!device_range_ok(p, 0) && !device_range_ok(static_cast<const char*>(p) - 1, 1)) {
    warn(std::string("kernel ") + kernel + ": pointer argument " + std::to_string(index) + " is not device memory");
    return;
  }
  // Without peer access a GPU faults on another GPU's memory.
  const int owner = device_of(device_range_ok(p, 0) ? p : static_cast<const char*>(p) - 1);
  if (owner != g_device)
    warn(std::string("kernel ") + kernel + ": pointer argument " + std::to_string(index) + " is memory of device " +
         std::to_string(owner) + " but the kernel runs on device " + std::to_string(g_device));
  check_not_in_flight(p, 0, std::string("kernel ") + kernel + " (pointer argument " + std::to_string(index) + ")");
}

std::map<std::string, long>& launch_counts() { static auto* m = new std::map<std::string, long>; return *m; }
struct StatsPrinter {
  ~StatsPrinter() {
    if (!std::getenv("EMU_STATS")) return;
    for (auto& [k, v] : launch_counts()) std::fprintf(stderr, "EMU launches %-45s %ld\n", k.c_str(), v);
  }
} g_stats_printer;

struct FuncInfo { int max_dynamic = 48 * 1024; };
static std::map<const void*, FuncInfo>& func_info() { static std::map<const void*, FuncInfo> m; return m; }

cudaError_t run_grid(const void* kernel_id, const char* name, dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                     Entry entry, void* closure) {
  drain(stream);
  const unsigned long long nthreads = 1ull * block.x * block.y * block.z;
  if (nthreads == 0 || nthreads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64 || grid.x == 0 ||
      grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) {
    warn(std::string("launch of ") + name + " with an invalid configuration grid=(" + std::to_string(grid.x) + "," +
         std::to_string(grid.y) + "," + std::to_string(grid.z) + ") block=(" + std::to_string(block.x) + "," +
         std::to_string(block.y) + "," + std::to_string(block.z) + ")");
    g_last_error = cudaErrorInvalidConfiguration;
    return g_last_error;
  }
  auto found = func_info().find(kernel_id);
  const int max_dynamic = found == func_info().end() ? 48 * 1024 : found->second.max_dynamic;
  if (smem > static_cast<size_t>(max_dynamic)) {
    warn(std::string("launch of ") + name + " with " + std::to_string(smem) + " B dynamic shared memory > allowed " +
         std::to_string(max_dynamic));
    g_last_error = cudaErrorInvalidValue;
    return g_last_error;
  }
  const bool reverse = reverse_order();
  launch_counts()[name]++;
  const unsigned n = static_cast<unsigned>(nthreads);
  const unsigned nwarps = (n + 31) / 32;
  Fiber* const saved_cur = cur;
  void* const saved_sched = sched_sp;
  Entry const saved_entry = g_entry;
  void* const saved_closure = g_closure;
  if (saved_cur != nullptr) { std::fprintf(stderr, "emu: kernel launch from device code\n"); std::abort(); }
  g_entry = entry;
  g_closure = closure;
  // The host's own accesses while it runs the blocks are the emulator's, not the program's.
  RaceIgnore ignore;
  // Heap objects, as the per-block ones: freeing one ends ThreadSanitizer's sync objects at its addresses.
  const auto launch_sync = std::make_unique<LaunchSync>();
  g_scheduler_fiber = race_current_fiber();
  g_launch_sync = launch_sync.get();
  race_release(&launch_sync->start);
  [[maybe_unused]] unsigned block_number = 0;  // in the order the blocks run (the race check's fiber sets)
  for (unsigned bz_ = 0; bz_ < grid.z; ++bz_)
    for (unsigned by_ = 0; by_ < grid.y; ++by_)
      for (unsigned bx_ = 0; bx_ < grid.x; ++bx_) {
        const unsigned bz = reverse ? grid.z - 1 - bz_ : bz_;
        const unsigned by = reverse ? grid.y - 1 - by_ : by_;
        const unsigned bx = reverse ? grid.x - 1 - bx_ : bx_;
        // Everything a block's threads share is the block's own (freshly allocated), so that the race
        // check sees no order between two blocks' accesses, as there is none on a GPU.
        std::vector<Fiber> fibers(n);
        std::vector<Warp> warps(nwarps);
        std::vector<unsigned char> shared_storage(smem + 256, 0xFF);  // garbage: NaN in f32 and bf16
        const uintptr_t shared_start = (reinterpret_cast<uintptr_t>(shared_storage.data()) + 127) & ~uintptr_t{127};
        unsigned char* shared = reinterpret_cast<unsigned char*>(shared_start);
        Block b;
        b.idx = {bx, by, bz};
        b.dim = block;
        b.grid = grid;
        b.nthreads = n;
        b.live = n;
        b.dyn_shared = smem ? shared : nullptr;
        b.dyn_bytes = smem;
        b.fibers = &fibers;
        b.warps = &warps;
        b.kernel_name = name;
        const auto race_sync = race_sync_for_block();
        b.race = race_sync.get();
        for (unsigned w = 0; w < nwarps; ++w) {
          warps[w].exists = std::min(32u, n - 32 * w);
          warps[w].live = warps[w].exists;
          warps[w].arrived = 0;
        }
        for (unsigned t = 0; t < n; ++t) {
          Fiber& f = fibers[t];
          f.linear = t;
          f.tid = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
          f.state = 0;
          f.block = &b;
#if EMU_RACE_CHECK
          const unsigned set = race_fiber_set(block_number, n);
          char* const stack = race_fiber_stack(set, t);
          f.race_fiber = race_fiber(set, t);
          const std::string fiber_name = std::string(name) + " block (" + std::to_string(bx) + "," +
                                         std::to_string(by) + "," + std::to_string(bz) + ") thread " +
                                         std::to_string(t);
          __tsan_set_fiber_name(f.race_fiber, fiber_name.c_str());
#else
          char* const stack = stack_at(t);
#endif
#if EMU_ASAN
          __asan_unpoison_memory_region(stack, kStackBytes);
#endif
          char* top = stack + kStackBytes;
          auto* sp = reinterpret_cast<uint64_t*>(top - 16);
          sp[0] = reinterpret_cast<uint64_t>(&emu_fiber_main);  // return address slot (16-aligned)
          sp[1] = 0;
          sp -= 6;
          for (int r = 0; r < 6; ++r) sp[r] = 0;
          sp -= 1;
          uint32_t ctrl[2] = {0x1F80u, 0x037Fu};
          std::memcpy(sp, ctrl, 8);
          f.sp = sp;
        }
        unsigned remaining = n;
        while (remaining > 0) {
          bool any = false;
          for (unsigned k = 0; k < n; ++k) {
            Fiber& f = fibers[reverse ? n - 1 - k : k];
            if (f.state != 0) continue;
            any = true;
            cur = &f;
            g_released_warp = -1;
            race_switch_to(f.race_fiber);
            emu_ctx_switch(&sched_sp, f.sp);
            cur = nullptr;
            if (f.state == 3) --remaining;
            // In reverse order a warp whose collective completed runs on from its first lane, so each warp
            // runs to its next __syncthreads before the next warp starts (by default the warps take turns
            // at each collective): work that one warp does before a barrier and another warp's reads
            // after it must be ordered by that barrier, not by the emulator's turns.
            if (reverse && g_released_warp >= 0) {
              const unsigned first_lane = std::min(n - 1, 32u * static_cast<unsigned>(g_released_warp) + 31u);
              k = n - 1 - first_lane - 1;  // the loop's ++k lands on it
            }
          }
          if (!any) {
            unsigned at_block = 0, at_warp = 0;
            for (auto& f : fibers) { at_block += f.state == 1; at_warp += f.state == 2; }
            std::fprintf(stderr, "EMU DEADLOCK in kernel %s block (%u,%u,%u): %u threads at __syncthreads, %u at warp collectives\n",
                         name, bx, by, bz, at_block, at_warp);
            std::abort();
          }
        }
        free_static_shared(b);
        ++block_number;
      }
  race_acquire(&launch_sync->end);
  g_launch_sync = nullptr;
  cur = saved_cur;
  sched_sp = saved_sched;
  g_entry = saved_entry;
  g_closure = saved_closure;
  check_reads_in_flight("kernel", name);
  return cudaSuccess;
}

// ---------------------------------------------------------------------------------------------
// Memory
namespace {
std::mutex g_mem_mutex;
std::map<uintptr_t, size_t> g_device_allocs;  // base → bytes
std::map<uintptr_t, int> g_alloc_devices;     // base → the device it was allocated on
std::map<uintptr_t, size_t> g_pinned_allocs;
size_t g_allocated = 0;
constexpr size_t kTotalMemory = size_t{143771} << 20;  // H200: ~140 GiB

// The allocation containing [p, p + bytes), or -1 if p is not device memory, -2 if it overruns.
int classify(const void* p, size_t bytes, const std::map<uintptr_t, size_t>& m) {
  const auto u = reinterpret_cast<uintptr_t>(p);
  auto it = m.upper_bound(u);
  if (it == m.begin()) return -1;
  --it;
  if (u >= it->first + std::max<size_t>(it->second, 1)) return -1;
  if (u + bytes > it->first + it->second) return -2;
  return 0;
}
}  // namespace

bool is_device_pointer(const void* p) {
  std::lock_guard<std::mutex> lock(g_mem_mutex);
  return classify(p, 0, g_device_allocs) == 0;
}

bool device_range_ok(const void* p, size_t bytes) {
  std::lock_guard<std::mutex> lock(g_mem_mutex);
  return classify(p, bytes, g_device_allocs) == 0;
}

int device_of(const void* p) {
  std::lock_guard<std::mutex> lock(g_mem_mutex);
  if (classify(p, 0, g_device_allocs) != 0) return -1;
  return std::prev(g_alloc_devices.upper_bound(reinterpret_cast<uintptr_t>(p)))->second;
}

int current_device() { return g_device; }

}  // namespace emu

using emu::g_last_error;

static cudaError_t fail(cudaError_t e) {
  g_last_error = e;
  return e;
}

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError: return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
    case cudaErrorNotReady: return "cudaErrorNotReady";
  }
  return "cudaErrorUnknown";
}
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    default: return cudaGetErrorName(e);
  }
}
cudaError_t cudaGetLastError() { auto e = g_last_error; g_last_error = cudaSuccess; return e; }
cudaError_t cudaPeekAtLastError() { return g_last_error; }
cudaError_t cudaGetDeviceCount(int* count) {
  static const bool none = std::getenv("EMU_NO_DEVICE") != nullptr;
  if (none) { *count = 0; return fail(cudaErrorNoDevice); }
  *count = emu::device_count();
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  if (!emu::valid_device(device)) return fail(cudaErrorInvalidDevice);
  emu::g_device = device;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) { *device = emu::g_device; return cudaSuccess; }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (!emu::valid_device(device)) return fail(cudaErrorInvalidDevice);
  std::memset(prop, 0, sizeof *prop);
  std::strcpy(prop->name, "NVIDIA H200 (emulated)");
  prop->totalGlobalMem = emu::kTotalMemory;
  prop->sharedMemPerBlock = 48 * 1024;
  prop->regsPerBlock = 65536;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = 1024; prop->maxThreadsDim[1] = 1024; prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 2147483647; prop->maxGridSize[1] = 65535; prop->maxGridSize[2] = 65535;
  prop->major = 9; prop->minor = 0;
  prop->multiProcessorCount = 132;
  prop->sharedMemPerMultiprocessor = 228 * 1024;
  prop->sharedMemPerBlockOptin = 227 * 1024;
  prop->maxThreadsPerMultiProcessor = 2048;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (!emu::valid_device(device)) return fail(cudaErrorInvalidDevice);
  switch (attr) {
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = 227 * 1024; break;
    case cudaDevAttrMultiProcessorCount: *value = 132; break;
    case cudaDevAttrComputeCapabilityMajor: *value = 9; break;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = 48 * 1024; break;
    default: return fail(cudaErrorInvalidValue);
  }
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() {
  emu::drain_all();
  return cudaSuccess;
}
cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  std::lock_guard<std::mutex> lock(emu::g_mem_mutex);
  if (bytes > emu::kTotalMemory - emu::g_allocated) { *ptr = nullptr; return fail(cudaErrorMemoryAllocation); }
  if (bytes == 0) { *ptr = nullptr; return cudaSuccess; }
  void* p = nullptr;
  if (posix_memalign(&p, 256, bytes) != 0) return fail(cudaErrorMemoryAllocation);
  std::memset(p, 0xFF, bytes);  // uninitialised device memory: garbage (NaN in f32 and bf16)
  emu::g_device_allocs[reinterpret_cast<uintptr_t>(p)] = bytes;
  emu::g_alloc_devices[reinterpret_cast<uintptr_t>(p)] = emu::g_device;
  emu::g_allocated += bytes;
  *ptr = p;
  return cudaSuccess;
}
cudaError_t cudaFree(void* ptr) {
  if (ptr == nullptr) return cudaSuccess;
  emu::drain_all();  // cudaFree synchronises the device
  std::lock_guard<std::mutex> lock(emu::g_mem_mutex);
  auto it = emu::g_device_allocs.find(reinterpret_cast<uintptr_t>(ptr));
  if (it == emu::g_device_allocs.end()) {
    emu::warn("cudaFree of a pointer that is not a live cudaMalloc allocation");
    return fail(cudaErrorInvalidValue);
  }
  emu::g_allocated -= it->second;
  emu::g_device_allocs.erase(it);
  emu::g_alloc_devices.erase(reinterpret_cast<uintptr_t>(ptr));
  std::free(ptr);
  return cudaSuccess;
}
cudaError_t cudaMallocHost(void** ptr, size_t bytes) {
  void* p = std::aligned_alloc(256, (bytes + 255) / 256 * 256 + 256);
  std::lock_guard<std::mutex> lock(emu::g_mem_mutex);
  emu::g_pinned_allocs[reinterpret_cast<uintptr_t>(p)] = bytes;
  *ptr = p;
  return cudaSuccess;
}
cudaError_t cudaFreeHost(void* ptr) {
  std::lock_guard<std::mutex> lock(emu::g_mem_mutex);
  emu::g_pinned_allocs.erase(reinterpret_cast<uintptr_t>(ptr));
  std::free(ptr);
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  std::lock_guard<std::mutex> lock(emu::g_mem_mutex);
  *total_bytes = emu::kTotalMemory;
  *free_bytes = emu::kTotalMemory - emu::g_allocated;
  return cudaSuccess;
}

static cudaError_t check_range(const void* p, size_t bytes, bool want_device, const char* call, const char* which) {
  std::lock_guard<std::mutex> lock(emu::g_mem_mutex);
  const int c = emu::classify(p, bytes, emu::g_device_allocs);
  if (want_device) {
    if (c == -1) {
      emu::warn(std::string(call) + ": " + which + " is not device memory");
      return fail(cudaErrorInvalidValue);
    }
    if (c == -2) {
      emu::warn(std::string(call) + ": " + which + " range runs past its allocation");
      return fail(cudaErrorInvalidValue);
    }
  } else if (c != -1) {
    emu::warn(std::string(call) + ": " + which + " expected host memory but is device memory");
  }
  return cudaSuccess;
}

static cudaError_t copy_checked(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, const char* call) {
  if (bytes == 0) return cudaSuccess;
  if (kind == cudaMemcpyDefault) {
    std::memmove(dst, src, bytes);
    emu::check_reads_in_flight(call, nullptr, dst, bytes);
    return cudaSuccess;
  }
  const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (auto e = check_range(dst, bytes, dst_dev, call, "destination"); e != cudaSuccess) return e;
  if (auto e = check_range(src, bytes, src_dev, call, "source"); e != cudaSuccess) return e;
  if (dst_dev) emu::check_not_in_flight(dst, bytes, std::string(call) + " (destination)");
  if (src_dev) emu::check_not_in_flight(src, bytes, std::string(call) + " (source)");
  std::memmove(dst, src, bytes);
  if (dst_dev) emu::check_reads_in_flight(call, nullptr, dst, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  emu::drain(nullptr);
  return copy_checked(dst, src, bytes, kind, "cudaMemcpy");
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  emu::drain(stream);
  return copy_checked(dst, src, bytes, kind, "cudaMemcpyAsync");
}
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t stream) {
  emu::drain(stream);
  if (width > dpitch || width > spitch) return fail(cudaErrorInvalidValue);  // documented: invalid pitch
  if (height == 0 || width == 0) return cudaSuccess;
  for (size_t r = 0; r < height; ++r) {
    auto e = copy_checked(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch, width, kind,
                          "cudaMemcpy2DAsync");
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}
cudaError_t cudaMemcpyPeerAsync(void* dst, int dst_device, const void* src, int src_device, size_t bytes, cudaStream_t stream) {
  emu::drain(stream);
  if (!emu::valid_device(dst_device) || !emu::valid_device(src_device)) return fail(cudaErrorInvalidDevice);
  return copy_checked(dst, src, bytes, cudaMemcpyDeviceToDevice, "cudaMemcpyPeerAsync");
}
static cudaError_t memset_checked(void* ptr, int value, size_t bytes, cudaStream_t stream, const char* call) {
  emu::drain(stream);
  if (bytes == 0) return cudaSuccess;
  if (auto e = check_range(ptr, bytes, true, call, "destination"); e != cudaSuccess) return e;
  emu::check_not_in_flight(ptr, bytes, call);
  std::memset(ptr, value, bytes);
  emu::check_reads_in_flight(call, nullptr, ptr, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemset(void* ptr, int value, size_t bytes) { return memset_checked(ptr, value, bytes, nullptr, "cudaMemset"); }
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t stream) {
  return memset_checked(ptr, value, bytes, stream, "cudaMemsetAsync");
}
// A stream's queued tasks (emu::enqueue) and the thread that runs them. Queues are never freed: their
// threads, detached, outlive the process's static destructors.
namespace emu {
namespace {
struct StreamQueue {
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<std::function<void()>> tasks;
  uint64_t issued = 0, done = 0;

  StreamQueue() { std::thread([this] { run(); }).detach(); }
  void push(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      tasks.push_back(std::move(task));
      ++issued;
    }
    changed.notify_all();
  }
  uint64_t ticket() {
    std::lock_guard<std::mutex> lock(mutex);
    return issued;
  }
  bool reached(uint64_t ticket) {
    std::lock_guard<std::mutex> lock(mutex);
    return done >= ticket;
  }
  void wait_for(uint64_t ticket) {
    std::unique_lock<std::mutex> lock(mutex);
    changed.wait(lock, [&] { return done >= ticket; });
  }
  void run() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mutex);
        changed.wait(lock, [&] { return !tasks.empty(); });
        task = std::move(tasks.front());
      }
      // Late tasks show work that does not wait for them: EMU_QUEUE_DELAY_MS holds each one back.
      static const int delay_ms = std::getenv("EMU_QUEUE_DELAY_MS") ? std::atoi(std::getenv("EMU_QUEUE_DELAY_MS")) : 0;
      if (delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
      task();
      {
        std::lock_guard<std::mutex> lock(mutex);
        tasks.pop_front();
        ++done;
      }
      changed.notify_all();
    }
  }
};

std::mutex g_queues_mutex;
std::vector<StreamQueue*>& all_queues() {
  static auto* queues = new std::vector<StreamQueue*>;
  return *queues;
}
StreamQueue* g_default_stream_queue = nullptr;  // the legacy and per-thread default streams share one

}  // namespace
}  // namespace emu

struct CUstream_st {
  unsigned flags;
  emu::StreamQueue* queue = nullptr;
};
// Work is synchronous, so an event's time is when it was recorded: the work before it is done. On a stream
// with queued tasks the event also names how many of them precede it.
struct CUevent_st {
  int recorded = 0;
  // When the stream reached the event: stamped at the record, or by a task of the stream's queue when
  // queued work comes before it. A new one per record, so that a late task of an earlier record
  // cannot overwrite the time of a later one.
  std::shared_ptr<std::chrono::steady_clock::time_point> when;
  emu::StreamQueue* queue = nullptr;
  uint64_t ticket = 0;
};
static std::set<cudaStream_t>& live_streams() { static std::set<cudaStream_t> s; return s; }
static bool is_default_stream(cudaStream_t stream) {
  return stream == nullptr || stream == cudaStreamLegacy || stream == cudaStreamPerThread;
}

namespace emu {
namespace {
// The stream's queue; made on first use when `create`, else null while the stream never had a task.
StreamQueue* queue_of(cudaStream_t stream, bool create) {
  std::lock_guard<std::mutex> lock(g_queues_mutex);
  StreamQueue** slot = is_default_stream(stream) ? &g_default_stream_queue : &stream->queue;
  if (*slot == nullptr && create) {
    *slot = new StreamQueue;
    all_queues().push_back(*slot);
  }
  return *slot;
}
}  // namespace

void enqueue(cudaStream_t stream, std::function<void()> task) { queue_of(stream, true)->push(std::move(task)); }

void drain(cudaStream_t stream) {
  if (StreamQueue* queue = queue_of(stream, false)) queue->wait_for(queue->ticket());
}

void drain_all() {
  std::vector<StreamQueue*> queues;
  {
    std::lock_guard<std::mutex> lock(g_queues_mutex);
    queues = all_queues();
  }
  for (StreamQueue* queue : queues) queue->wait_for(queue->ticket());
}
}  // namespace emu

cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, 0); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags) {
  *stream = new CUstream_st{flags};
  live_streams().insert(*stream);
  return cudaSuccess;
}
// The stream's queued tasks run to the end first (CUDA, too, finishes a destroyed stream's work).
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (!live_streams().count(stream)) return fail(cudaErrorInvalidResourceHandle);
  emu::drain(stream);
  live_streams().erase(stream);
  delete stream;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  if (!is_default_stream(stream) && !live_streams().count(stream)) return fail(cudaErrorInvalidResourceHandle);
  emu::drain(stream);
  return cudaSuccess;
}
// A stream with a queue waits in its queue; any other stream's work runs on the host when issued, so the host
// waits here (stricter than a GPU, which would not block the host, but the same order).
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned) {
  emu::StreamQueue* source = event->queue;
  const uint64_t ticket = event->ticket;
  if (source == nullptr || source->reached(ticket)) return cudaSuccess;
  emu::StreamQueue* target = emu::queue_of(stream, false);
  if (target == source) return cudaSuccess;  // stream order already
  if (target != nullptr) {
    target->push([source, ticket] { source->wait_for(ticket); });
  } else {
    source->wait_for(ticket);
  }
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* event) { *event = new CUevent_st; return cudaSuccess; }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned) { *event = new CUevent_st; return cudaSuccess; }
cudaError_t cudaEventDestroy(cudaEvent_t event) { delete event; return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  event->recorded = 1;
  event->when = std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now());
  event->queue = emu::queue_of(stream, false);
  event->ticket = event->queue != nullptr ? event->queue->ticket() : 0;
  if (event->queue != nullptr && !event->queue->reached(event->ticket)) {
    // Work is queued before the event (a wait for a transfer): its time is when the queue gets here.
    event->queue->push([when = event->when] { *when = std::chrono::steady_clock::now(); });
    event->ticket = event->queue->ticket();
  }
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  if (event->queue != nullptr) event->queue->wait_for(event->ticket);
  return cudaSuccess;
}
// An event never recorded counts as complete, as in CUDA.
cudaError_t cudaEventQuery(cudaEvent_t event) {
  if (event->queue != nullptr && !event->queue->reached(event->ticket)) return cudaErrorNotReady;
  return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!start->recorded || !end->recorded) return cudaErrorInvalidResourceHandle;
  if (cudaEventQuery(start) != cudaSuccess || cudaEventQuery(end) != cudaSuccess) return cudaErrorNotReady;
  *ms = std::chrono::duration<float, std::milli>(*end->when - *start->when).count();
  return cudaSuccess;
}
cudaError_t cudaLaunchHostFunc(cudaStream_t stream, cudaHostFn_t fn, void* user_data) {
  if (!is_default_stream(stream) && !live_streams().count(stream)) return fail(cudaErrorInvalidResourceHandle);
  emu::enqueue(stream, [fn, user_data] { fn(user_data); });
  return cudaSuccess;
}
cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* a, const void* ptr) {
  std::memset(a, 0, sizeof *a);
  if (const int device = emu::device_of(ptr); device >= 0) {
    a->type = cudaMemoryTypeDevice;
    a->device = device;
    a->devicePointer = const_cast<void*>(ptr);
  } else {
    a->type = cudaMemoryTypeUnregistered;
    a->device = -2;
  }
  return cudaSuccess;
}
cudaError_t cudaDeviceCanAccessPeer(int* can, int, int) { *can = 0; return cudaSuccess; }
cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || value > 227 * 1024) return fail(cudaErrorInvalidValue);
    emu::func_info()[func].max_dynamic = value;
  }
  return cudaSuccess;
}
