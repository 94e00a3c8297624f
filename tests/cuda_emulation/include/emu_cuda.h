#pragma once
// Host emulation of the CUDA runtime + device features Meridian uses.
// CUDA threads of a block run as fibers (custom x86-64 context switch) on one host thread; blocks run
// sequentially; __syncthreads / warp collectives are fiber barriers. Kernels, copies and cuBLASLt run when
// issued; only queued tasks (emulated NCCL, emu::enqueue below) run beside the host, in stream order.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __grid_constant__
#define __align__(n) alignas(n)

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct uint3 { unsigned x, y, z; };
// Aligned as CUDA's vector types are (__builtin_align__(16)): a kernel may rely on it, e.g. a
// __shared__ uint4 array whose rows ldmatrix reads must be 16-byte aligned.
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(16) int4 { int x, y, z, w; };
inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return {a, b, c, d}; }

struct CUstream_st;
using cudaStream_t = CUstream_st*;
struct CUevent_st;
using cudaEvent_t = CUevent_st*;

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInitializationError = 3,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorInvalidDevice = 101,
  cudaErrorNoDevice = 100,
  cudaErrorLaunchOutOfResources = 701,
  cudaErrorLaunchFailure = 719,
  cudaErrorIllegalAddress = 700,
  cudaErrorInvalidDeviceFunction = 98,
  cudaErrorNotReady = 600,
};
using cudaError = cudaError_t;
enum cudaMemcpyKind { cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3, cudaMemcpyDefault = 4 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8, cudaFuncAttributePreferredSharedMemoryCarveout = 9 };
enum cudaMemoryType { cudaMemoryTypeUnregistered = 0, cudaMemoryTypeHost = 1, cudaMemoryTypeDevice = 2, cudaMemoryTypeManaged = 3 };
struct cudaPointerAttributes { cudaMemoryType type; int device; void* devicePointer; void* hostPointer; };
#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01
#define cudaStreamLegacy ((cudaStream_t)0x1)
#define cudaStreamPerThread ((cudaStream_t)0x2)
#define cudaEventDisableTiming 0x02
#define cudaEventDefault 0x00

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlock;
  int regsPerBlock;
  int warpSize;
  int maxThreadsPerBlock;
  int maxThreadsDim[3];
  int maxGridSize[3];
  int major, minor;
  int multiProcessorCount;
  size_t sharedMemPerMultiprocessor;
  size_t sharedMemPerBlockOptin;
  int maxThreadsPerMultiProcessor;
  int pciBusID, pciDeviceID, pciDomainID;
};
enum cudaDeviceAttr {
  cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
  cudaDevAttrMultiProcessorCount = 16,
  cudaDevAttrComputeCapabilityMajor = 75,
  cudaDevAttrComputeCapabilityMinor = 76,
  cudaDevAttrMaxSharedMemoryPerBlock = 8,
};

inline constexpr int warpSize = 32;
const char* cudaGetErrorString(cudaError_t e);
const char* cudaGetErrorName(cudaError_t e);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaMalloc(void** ptr, size_t bytes);
template <class T>
inline cudaError_t cudaMalloc(T** ptr, size_t bytes) { return cudaMalloc(reinterpret_cast<void**>(ptr), bytes); }
cudaError_t cudaMallocHost(void** ptr, size_t bytes);
cudaError_t cudaFreeHost(void* ptr);
cudaError_t cudaFree(void* ptr);
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream = nullptr);
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t stream = nullptr);
cudaError_t cudaMemcpyPeerAsync(void* dst, int dst_device, const void* src, int src_device, size_t bytes,
                                cudaStream_t stream = nullptr);
cudaError_t cudaMemset(void* ptr, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t stream = nullptr);
cudaError_t cudaStreamCreate(cudaStream_t* stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags = 0);
cudaError_t cudaEventCreate(cudaEvent_t* event);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventQuery(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);
using cudaHostFn_t = void (*)(void* user_data);
// Queued on the stream (emu::enqueue): it runs beside the host, after the stream's earlier work, as on a GPU.
cudaError_t cudaLaunchHostFunc(cudaStream_t stream, cudaHostFn_t fn, void* user_data);
cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* attributes, const void* ptr);
cudaError_t cudaDeviceCanAccessPeer(int* can, int device, int peer);
cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value);
template <class F>
inline cudaError_t cudaFuncSetAttribute(F* func, cudaFuncAttribute attr, int value) {
  return cudaFuncSetAttribute(reinterpret_cast<const void*>(func), attr, value);
}

// ---------------------------------------------------------------------------------------------
// bf16
struct __nv_bfloat16 {
  unsigned short __x;
  __nv_bfloat16() = default;
  __nv_bfloat16(float f);
  __nv_bfloat16(double f) : __nv_bfloat16(static_cast<float>(f)) {}
  __nv_bfloat16(int i) : __nv_bfloat16(static_cast<float>(i)) {}
  operator float() const {
    uint32_t u = uint32_t(__x) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};
using nv_bfloat16 = __nv_bfloat16;
struct __nv_bfloat16_raw { unsigned short x; };
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  __nv_bfloat16 r;
  if ((u & 0x7fffffffu) > 0x7f800000u) { r.__x = static_cast<unsigned short>((u >> 16) | 0x40); return r; }
  u += 0x7fffu + ((u >> 16) & 1u);
  r.__x = static_cast<unsigned short>(u >> 16);
  return r;
}
inline __nv_bfloat16::__nv_bfloat16(float f) { __x = __float2bfloat16_rn(f).__x; }
inline float __bfloat162float(__nv_bfloat16 v) { return static_cast<float>(v); }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 v) { return v.__x; }
inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }

// float intrinsics. The _rn forms must not be contracted into FMAs: an empty asm pins the rounding.
#define EMU_PIN(r) asm volatile("" : "+x"(r))
inline float __fmul_rn(float a, float b) { float r = a * b; EMU_PIN(r); return r; }
inline float __fadd_rn(float a, float b) { float r = a + b; EMU_PIN(r); return r; }
inline float __fsub_rn(float a, float b) { float r = a - b; EMU_PIN(r); return r; }
inline float __fdiv_rn(float a, float b) { float r = a / b; EMU_PIN(r); return r; }
inline float __fsqrt_rn(float a) { float r = std::sqrt(a); EMU_PIN(r); return r; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline double __dadd_rn(double a, double b) { double r = a + b; EMU_PIN(r); return r; }
inline double __dmul_rn(double a, double b) { double r = a * b; EMU_PIN(r); return r; }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline int __float_as_int(float f) { int i; std::memcpy(&i, &f, 4); return i; }
inline unsigned __float_as_uint(float f) { unsigned i; std::memcpy(&i, &f, 4); return i; }
inline float __uint_as_float(unsigned i) { float f; std::memcpy(&f, &i, 4); return f; }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }

// ---------------------------------------------------------------------------------------------
// Race check (the `race` preset: ThreadSanitizer, EMU_RACE_CHECK=1). Each CUDA thread runs on a
// ThreadSanitizer fiber (blocks take turns over sets of them: emulated_runtime.cpp), and only what CUDA
// orders is ordered:
// the launch before its threads, __syncthreads among a block's threads, __syncwarp among a warp's,
// every thread before the host's next look at memory after the kernel. Nothing orders two blocks, or
// two threads between barriers, so ThreadSanitizer reports their conflicting accesses as the races they
// are on a GPU. Warp collectives (shuffles, mma.sync, ldmatrix) exchange registers, not memory: their
// exchange slots are relaxed atomics and they order nothing, as CUDA promises no memory ordering there.
#ifndef EMU_RACE_CHECK
#define EMU_RACE_CHECK 0
#endif
namespace emu {
template <class T>
inline void exchange_store(T& slot, T value) {
#if EMU_RACE_CHECK
  __atomic_store_n(&slot, value, __ATOMIC_RELAXED);
#else
  slot = value;
#endif
}
template <class T>
inline T exchange_load(const T& slot) {
#if EMU_RACE_CHECK
  return __atomic_load_n(&slot, __ATOMIC_RELAXED);
#else
  return slot;
#endif
}
}  // namespace emu

// ---------------------------------------------------------------------------------------------
// Device-side execution state
namespace emu {
struct Block;
struct RaceSync;  // emulated_runtime.cpp: the race check's per-block synchronisation objects
// A cp.async a thread issued and has not yet waited for (emu_async_copy.h).
struct AsyncCopy {
  unsigned char* target;
  const unsigned char* source;
  unsigned bytes, source_bytes;  // source_bytes < bytes: the rest is zero-filled
  unsigned group;
  void run() const {
    std::memcpy(target, source, source_bytes);
    std::memset(target + source_bytes, 0, bytes - source_bytes);
  }
};
// EMU_REVERSE: blocks and threads run in reverse order, each warp on to its next __syncthreads, and
// cp.async copies run when issued rather than when waited for.
bool reverse_order();
struct Fiber {
  void* sp = nullptr;
  uint3 tid{0, 0, 0};
  unsigned linear = 0;
  int state = 0;  // 0 ready, 1 wait block barrier, 2 wait warp barrier, 3 done
  Block* block = nullptr;
  char* stack = nullptr;
  std::vector<AsyncCopy> async_copies;
  unsigned async_groups = 0;  // groups committed
  void* race_fiber = nullptr;  // its ThreadSanitizer fiber (race check)
};
struct Warp {
  unsigned exists = 0;  // lanes present in the block
  unsigned live = 0;
  unsigned arrived = 0;
  unsigned generation = 0;  // __syncwarp calls completed (the race check's two alternating sync objects)
  unsigned long long xchg[32];
  uint32_t mma_operands[32][6];  // each lane's a[4], b[2] of an mma.sync (emu_mma_sync.h)
};
struct Block {
  uint3 idx{0, 0, 0};
  dim3 dim, grid;
  unsigned nthreads = 0;
  unsigned live = 0, arrived = 0;
  unsigned generation = 0;  // __syncthreads calls completed
  unsigned char* dyn_shared = nullptr;
  size_t dyn_bytes = 0;
  std::vector<Fiber>* fibers = nullptr;
  std::vector<Warp>* warps = nullptr;
  const char* kernel_name = nullptr;
  // Where the threads waiting at the block barrier called __syncthreads (all must be at one call).
  const char* barrier_file = nullptr;
  unsigned barrier_line = 0;
  // Static __shared__ arrays (static_shared), by their declaration's key; freed when the block ends.
  std::vector<std::pair<const void*, void*>> statics;
  RaceSync* race = nullptr;
};
extern thread_local Fiber* cur;
extern thread_local const dim3* cur_block_dim;
void syncthreads(const char* file, unsigned line);
// A barrier of the warp's live lanes; `orders_memory`: __syncwarp, which orders the lanes' memory
// accesses (the collectives do not).
void warp_sync(const char* what, unsigned mask, bool orders_memory = false);
void warp_issue(const char* what);
[[noreturn]] void device_trap(const char* what);
inline unsigned lane() { return cur->linear % 32; }
inline Warp& my_warp() { return (*cur->block->warps)[cur->linear / 32]; }
inline unsigned char* dyn_shared() { return cur->block->dyn_shared; }

using Entry = void (*)(void* closure);
// Runs grid × block threads of `entry(closure)`; returns an error for a bad configuration.
cudaError_t run_grid(const void* kernel_id, const char* name, dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                     Entry entry, void* closure);
void set_launch_error(cudaError_t e);
// A static __shared__ array: the block's own, filled with NaN bytes when its first thread reaches the
// declaration (`key` tells declarations apart), as uninitialised shared memory holds garbage.
void* static_shared_bytes(const void* key, size_t bytes, size_t alignment);
template <class T>
inline T& static_shared(const void* key) {
  static_assert(std::is_trivially_copyable_v<std::remove_all_extents_t<T>>, "__shared__ of a non-trivial type");
  return *static_cast<T*>(static_shared_bytes(key, sizeof(T), alignof(T)));
}
void check_kernel_pointer(const char* kernel, int index, const void* p);
// Emulated device memory: whether p, or [p, p + bytes), lies inside one allocation; the device p was
// allocated on (-1: not device memory); the calling thread's current device.
bool is_device_pointer(const void* p);
bool device_range_ok(const void* p, size_t bytes);
int device_of(const void* p);
int current_device();
// Reports what would be undefined or a fault on a GPU (once per message; fatal under EMU_WARNINGS_FATAL).
void warn(const std::string& message);
// Work that runs beside the host in stream order: emulated NCCL (a transfer waits for its peer, which a
// synchronous emulation would turn into a deadlock). A stream's tasks run one after another on a
// thread of the stream's own. Everything else still runs when it is issued, after drain(stream): the
// stream's queued tasks first. Events recorded on such a stream complete when the tasks before them
// have; a stream or the host that waits for one waits for those tasks.
void enqueue(cudaStream_t stream, std::function<void()> task);
// Device memory a queued task writes (an NCCL receive or reduction), from when the task is issued until it
// ends: work the host issues meanwhile must not touch it (check_not_in_flight warns), as on a GPU the
// compute stream's kernels would race with the transfer unless they waited for its event.
uint64_t begin_in_flight(const void* p, size_t bytes, const char* what);
void end_in_flight(uint64_t id);
void check_not_in_flight(const void* p, size_t bytes, const std::string& user);
// Device memory a queued task reads (an NCCL send, a collective's input), from when the task is issued
// until it ends: work the host issues meanwhile may read it but must not write it, as on a GPU such a
// write races with the transfer unless it waits for the transfer's event. Reading is no race, so the
// emulator keeps a copy of the bytes and compares after each kernel, copy, memset, cuBLASLt product
// and block the caching allocator hands out again (check_reads_in_flight): a difference is a write.
// The copy is taken at the issue, or, when an earlier task still writes the memory, as the last such
// task ends (end_in_flight), at the latest at the task's start (arm_read_in_flight); end_read_in_flight
// compares once more (another stream's transfer may have written it) and forgets it.
uint64_t begin_read_in_flight(const void* p, size_t bytes, const char* what);
void arm_read_in_flight(uint64_t id);
void end_read_in_flight(uint64_t id);
// `writer` (and `name`, when given, after it) names what just wrote device memory, for the warning;
// [written, written + bytes) is what it wrote, where known (nullptr: compare every read in flight).
void check_reads_in_flight(const char* writer, const char* name = nullptr, const void* written = nullptr,
                           size_t bytes = 0);
// A block returned to Meridian's caching allocator: no transfer may still read or write it. The
// allocator hands blocks out again in the compute stream's order, which does not follow other streams.
void check_freed_block(const void* p, size_t bytes);
// Every warning so far, in order (each once): for the emulator's own tests, which run without
// EMU_WARNINGS_FATAL and check that a planted race is reported.
std::vector<std::string> warnings();
void drain(cudaStream_t stream);
void drain_all();
}  // namespace emu

#define threadIdx (::emu::cur->tid)
#define blockIdx (::emu::cur->block->idx)
#define blockDim (::emu::cur->block->dim)
#define gridDim (::emu::cur->block->grid)

// The call's source position identifies it: the host compiler may duplicate a call into both arms of a
// branch (nvcc treats __syncthreads as convergent and does not), so return addresses would not.
inline void __syncthreads(const char* file = __builtin_FILE(), unsigned line = __builtin_LINE()) {
  emu::syncthreads(file, line);
}
inline int __syncthreads_or(int p) { (void)p; std::fprintf(stderr, "emu: __syncthreads_or unsupported\n"); std::abort(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { emu::warp_sync("__syncwarp", mask, true); }
inline void __threadfence() {}
inline void __threadfence_block() {}

template <class T>
inline T emu_shfl(unsigned mask, T v, int src_lane_of_mine, const char* what) {
  static_assert(sizeof(T) <= 8, "shuffle of a value larger than 8 bytes");
  auto& w = emu::my_warp();
  const unsigned lane = emu::lane();
  unsigned long long bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  emu::warp_sync(what, mask);  // everybody has finished any earlier exchange
  emu::exchange_store(w.xchg[lane], bits);
  emu::warp_sync(what, mask);
  const unsigned long long got = emu::exchange_load(w.xchg[static_cast<unsigned>(src_lane_of_mine) & 31u]);
  T r;
  std::memcpy(&r, &got, sizeof(T));
  return r;
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  const int lane = static_cast<int>(emu::lane());
  int src = lane ^ lane_mask;
  if (width < 32 && (src / width) != (lane / width)) src = lane;
  return emu_shfl(mask, v, src, "__shfl_xor_sync");
}
template <class T>
inline T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
  const int lane = static_cast<int>(emu::lane());
  const int src = (lane / width) * width + (src_lane % width);
  return emu_shfl(mask, v, src, "__shfl_sync");
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = static_cast<int>(emu::lane());
  int src = lane + static_cast<int>(delta);
  if ((src / width) != (lane / width)) src = lane;
  return emu_shfl(mask, v, src, "__shfl_down_sync");
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = static_cast<int>(emu::lane());
  int src = lane - static_cast<int>(delta);
  if (src < 0 || (src / width) != (lane / width)) src = lane;
  return emu_shfl(mask, v, src, "__shfl_up_sync");
}

// Kernel launch: `k<<<g, b, s, st>>>(args)` is rewritten (gen.py) to
// `::emu::make_launch("k", id, g, b, s, st)([=](auto... a) { k(a...); }, args)`: the arguments are evaluated
// once, copied per thread, and converted to the kernel's parameter types at the call, as a real launch does.
namespace emu {
template <class T>
inline const void* ptr_of(const T& v) {
  if constexpr (std::is_pointer_v<T>) return reinterpret_cast<const void*>(v); else return nullptr;
}
template <class F>
inline const void* kernel_id(F* f) { return reinterpret_cast<const void*>(f); }
struct Launch {
  const char* name;
  const void* id;
  dim3 grid, block;
  size_t smem;
  cudaStream_t stream;
  template <class F, class... A>
  void operator()(F f, A&&... args) const {
    std::tuple<std::decay_t<A>...> params(std::forward<A>(args)...);
    int index = 0;
    std::apply([&](const auto&... xs) { (check_kernel_pointer(name, index++, ptr_of(xs)), ...); }, params);
    struct Closure { F* f; std::tuple<std::decay_t<A>...>* params; } closure{&f, &params};
    run_grid(id, name, grid, block, smem, stream,
             [](void* p) {
               auto* c = static_cast<Closure*>(p);
               std::apply(*c->f, *c->params);
             },
             &closure);
  }
};
inline Launch make_launch(const char* name, const void* id, dim3 grid, dim3 block, size_t smem = 0, cudaStream_t stream = nullptr) {
  return Launch{name, id, grid, block, smem, stream};
}
}  // namespace emu
