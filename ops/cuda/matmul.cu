#include "ops/cuda/matmul.h"

#include <cublasLt.h>

#include <algorithm>
#include <array>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "ops/cuda/elementwise.h"
#include "ops/cuda/gelu.h"
#include "ops/cuda/kernel_common.cuh"

namespace meridian::ops::cuda {

namespace {

using detail::check_cuda;
using detail::check_launch;
using detail::from_float;
using detail::kVectorElements;
using detail::load_floats;
using detail::to_float;

// Each (device, stream) has one scratch buffer of kWorkspaceBytes. cuBLASLt gets the first
// kGemmWorkspaceBytes (its recommended 32 MiB on Hopper, less the tail; Ampere needs less); the tail
// receives the BGRADB epilogue's column sums while that product runs. The dbias reduction borrows the
// whole buffer between products (stream order keeps them apart).
constexpr size_t kWorkspaceBytes = size_t{32} << 20;
constexpr size_t kBiasGradientBytes = size_t{256} << 10;  // 64 Ki fp32 columns
constexpr size_t kGemmWorkspaceBytes = kWorkspaceBytes - kBiasGradientBytes;

// ---------------------------------------------------------------------------------------------
// Per-thread cuBLASLt state.

struct StreamWorkspace {
  int device = 0;
  void* memory = nullptr;
};

struct ThreadMatmulState {
  std::map<int, cublasLtHandle_t> handles;                              // per device
  std::map<std::pair<int, cudaStream_t>, StreamWorkspace> workspaces;  // per (device, stream)
  // The heuristic's answer per product description (the key in run_gemm): an algorithm, or none (the
  // caller falls back to a plainer epilogue). A training step repeats a few dozen shapes, so after
  // the first step no product asks the heuristic again (it costs tens of microseconds of host time).
  std::map<std::array<int64_t, 21>, std::optional<cublasLtMatmulAlgo_t>> algorithms;
  bool allow_tf32 = false;
  bool bias_gradient_epilogue = true;
  MatmulEpilogueReport report;

  void release() {
    // Products may still be running on their streams: wait for every device we used. Errors are
    // ignored here (this also runs at thread exit, possibly while the runtime is unloading).
    int original_device = 0;
    const bool restore = cudaGetDevice(&original_device) == cudaSuccess;
    for (auto& entry : workspaces) {
      const StreamWorkspace& workspace = entry.second;
      if (cudaSetDevice(workspace.device) == cudaSuccess) {
        cudaDeviceSynchronize();
        cudaFree(workspace.memory);
      }
    }
    workspaces.clear();
    for (auto& entry : handles) cublasLtDestroy(entry.second);
    handles.clear();
    algorithms.clear();
    report = MatmulEpilogueReport{};
    if (restore) cudaSetDevice(original_device);
    cudaGetLastError();
  }
  ~ThreadMatmulState() { release(); }
};

ThreadMatmulState& thread_state() {
  thread_local ThreadMatmulState state;
  return state;
}

int current_device() {
  int device = 0;
  check_cuda(cudaGetDevice(&device), "matmul: cudaGetDevice");
  return device;
}

std::string status_text(cublasStatus_t status) {
  return std::string(cublasLtGetStatusName(status)) + " (" + cublasLtGetStatusString(status) + ")";
}

void check_cublas(cublasStatus_t status, const char* call, const std::string& context) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    throw std::runtime_error(context + ": " + call + " failed: " + status_text(status));
  }
}

cublasLtHandle_t handle_for(int device, const std::string& context) {
  ThreadMatmulState& state = thread_state();
  auto found = state.handles.find(device);
  if (found != state.handles.end()) return found->second;
  cublasLtHandle_t handle = nullptr;
  check_cublas(cublasLtCreate(&handle), "cublasLtCreate", context);
  state.handles.emplace(device, handle);
  return handle;
}

void* workspace_for(int device, cudaStream_t stream, const std::string& context) {
  ThreadMatmulState& state = thread_state();
  const auto key = std::make_pair(device, stream);
  auto found = state.workspaces.find(key);
  if (found != state.workspaces.end()) return found->second.memory;
  void* memory = nullptr;
  check_cuda(cudaMalloc(&memory, kWorkspaceBytes), context + ": cudaMalloc of the 32 MiB cuBLASLt workspace");
  state.workspaces.emplace(key, StreamWorkspace{device, memory});
  return memory;
}

// ---------------------------------------------------------------------------------------------
// One cuBLASLt product, column-major as cuBLASLt sees it:
//   D (m×n, ldd) = op(A) (m×k) · op(B) (k×n) + beta · D,  then the epilogue.
// Row-major callers pass their matrices transposed (see matmul_forward / matmul_backward).

template <class T>
constexpr cudaDataType_t data_type();
template <>
constexpr cudaDataType_t data_type<float>() {
  return CUDA_R_32F;
}
template <>
constexpr cudaDataType_t data_type<__nv_bfloat16>() {
  return CUDA_R_16BF;
}

struct Gemm {
  bool trans_a = false;
  bool trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  const void* a = nullptr;
  int64_t lda = 0;
  const void* b = nullptr;
  int64_t ldb = 0;
  cudaDataType_t input_type = CUDA_R_32F;  // A and B
  void* d = nullptr;
  int64_t ldd = 0;
  cudaDataType_t output_type = CUDA_R_32F;  // C = D (in place when beta = 1) and the bias
  float beta = 0.0f;
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;  // epilogues with BIAS (read), or BGRADB (written: the column sums of B)
  void* aux = nullptr;         // epilogues with AUX: the GELU input, ld aux_ld
  int64_t aux_ld = 0;
  float alpha = 1.0f;
  int64_t batch = 1;  // strided-batched: `batch` products, each operand `stride_*` elements after the last
  int64_t stride_a = 0, stride_b = 0, stride_d = 0;
};

struct MatmulDescDeleter {
  void operator()(cublasLtMatmulDescOpaque_t* desc) const { cublasLtMatmulDescDestroy(desc); }
};
struct LayoutDeleter {
  void operator()(cublasLtMatrixLayoutOpaque_t* layout) const { cublasLtMatrixLayoutDestroy(layout); }
};
struct PreferenceDeleter {
  void operator()(cublasLtMatmulPreferenceOpaque_t* preference) const { cublasLtMatmulPreferenceDestroy(preference); }
};
using MatmulDesc = std::unique_ptr<cublasLtMatmulDescOpaque_t, MatmulDescDeleter>;
using Layout = std::unique_ptr<cublasLtMatrixLayoutOpaque_t, LayoutDeleter>;
using Preference = std::unique_ptr<cublasLtMatmulPreferenceOpaque_t, PreferenceDeleter>;

Layout make_layout(cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld, const std::string& context) {
  cublasLtMatrixLayout_t layout = nullptr;
  check_cublas(cublasLtMatrixLayoutCreate(&layout, type, static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), ld),
               "cublasLtMatrixLayoutCreate", context);
  return Layout(layout);
}

template <class Value>
void set_attribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attribute, const Value& value,
                   const char* name, const std::string& context) {
  check_cublas(cublasLtMatmulDescSetAttribute(desc, attribute, &value, sizeof(value)), name, context);
}

std::string describe(const char* caller, const Gemm& g) {
  return std::string(caller) + " (cuBLASLt column-major m=" + std::to_string(g.m) + " n=" + std::to_string(g.n) +
         " k=" + std::to_string(g.k) + " trans_a=" + std::to_string(g.trans_a) +
         " trans_b=" + std::to_string(g.trans_b) + " lda=" + std::to_string(g.lda) + " ldb=" + std::to_string(g.ldb) +
         " ldd=" + std::to_string(g.ldd) + " epilogue=" + std::to_string(static_cast<int>(g.epilogue)) +
         " batch=" + std::to_string(g.batch) + ")";
}

// The alignment cuBLASLt may assume for an operand: the largest power of two (at most 256) dividing
// its address and, in a strided batch, every batch's stride in bytes.
uint32_t alignment_bytes(const void* pointer, int64_t batch, int64_t stride, size_t element_bytes) {
  uint64_t bits = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(pointer)) | 256u;
  if (batch > 1) bits |= static_cast<uint64_t>(stride) * element_bytes;
  return static_cast<uint32_t>(bits & (~bits + 1));
}

// cuBLASLt's first choice for a product, or none when it offers no algorithm for the combination
// (NOT_SUPPORTED, nothing found, or for a fused epilogue INVALID_VALUE, which some versions answer
// for one-row or one-column operands with a bias); throws on any other failure. The alignments tell
// the heuristic what the operands really allow (by default it assumes 256 bytes).
std::optional<cublasLtMatmulAlgo_t> ask_heuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                                  cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                                  cublasLtMatrixLayout_t d, cublasLtEpilogue_t epilogue,
                                                  uint32_t alignment_a, uint32_t alignment_b, uint32_t alignment_d,
                                                  const std::string& context) {
  cublasLtMatmulPreference_t raw_preference = nullptr;
  check_cublas(cublasLtMatmulPreferenceCreate(&raw_preference), "cublasLtMatmulPreferenceCreate", context);
  Preference preference(raw_preference);
  const size_t workspace_bytes = kGemmWorkspaceBytes;
  check_cublas(cublasLtMatmulPreferenceSetAttribute(raw_preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                    &workspace_bytes, sizeof(workspace_bytes)),
               "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)", context);
  const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> alignments[] = {
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, alignment_a},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, alignment_b},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, alignment_d},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, alignment_d}};
  for (const auto& [attribute, bytes] : alignments) {
    check_cublas(cublasLtMatmulPreferenceSetAttribute(raw_preference, attribute, &bytes, sizeof(bytes)),
                 "cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT)", context);
  }
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  const cublasStatus_t status =
      cublasLtMatmulAlgoGetHeuristic(handle, desc, a, b, d, d, raw_preference, 1, &heuristic, &found);
  const bool fused = epilogue != CUBLASLT_EPILOGUE_DEFAULT;
  if (status == CUBLAS_STATUS_NOT_SUPPORTED || (fused && status == CUBLAS_STATUS_INVALID_VALUE) ||
      (status == CUBLAS_STATUS_SUCCESS && (found == 0 || heuristic.state != CUBLAS_STATUS_SUCCESS))) {
    return std::nullopt;
  }
  check_cublas(status, "cublasLtMatmulAlgoGetHeuristic", context);
  return heuristic.algo;
}

// The fused epilogue's name, for matmul_epilogue_report.
const char* epilogue_name(cublasLtEpilogue_t epilogue) {
  switch (epilogue) {
    case CUBLASLT_EPILOGUE_BIAS: return "BIAS";
    case CUBLASLT_EPILOGUE_GELU: return "GELU";
    case CUBLASLT_EPILOGUE_GELU_BIAS: return "GELU_BIAS";
    case CUBLASLT_EPILOGUE_GELU_AUX: return "GELU_AUX";
    case CUBLASLT_EPILOGUE_GELU_AUX_BIAS: return "GELU_AUX_BIAS";
    case CUBLASLT_EPILOGUE_DGELU: return "DGELU";
    case CUBLASLT_EPILOGUE_BGRADB: return "BGRADB";
    default: return "other";
  }
}

// Runs the product. Returns false, having launched nothing, when cuBLASLt's heuristic offers no
// algorithm for this combination (the caller then falls back to a plainer epilogue); throws on any
// other failure.
bool run_gemm(const Gemm& g, cudaStream_t stream, const char* caller) {
  const std::string context = describe(caller, g);
  const int device = current_device();
  cublasLtHandle_t handle = handle_for(device, context);
  void* workspace = workspace_for(device, stream, context);

  const bool fp32_inputs = g.input_type == CUDA_R_32F;
  const cublasComputeType_t compute =
      fp32_inputs && thread_state().allow_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  cublasLtMatmulDesc_t raw_desc = nullptr;
  check_cublas(cublasLtMatmulDescCreate(&raw_desc, compute, CUDA_R_32F), "cublasLtMatmulDescCreate", context);
  MatmulDesc desc(raw_desc);
  const cublasOperation_t op_a = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  set_attribute(raw_desc, CUBLASLT_MATMUL_DESC_TRANSA, op_a, "cublasLtMatmulDescSetAttribute(TRANSA)", context);
  set_attribute(raw_desc, CUBLASLT_MATMUL_DESC_TRANSB, op_b, "cublasLtMatmulDescSetAttribute(TRANSB)", context);
  set_attribute(raw_desc, CUBLASLT_MATMUL_DESC_EPILOGUE, g.epilogue, "cublasLtMatmulDescSetAttribute(EPILOGUE)",
                context);
  if (g.bias != nullptr) {
    set_attribute(raw_desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, g.bias,
                  "cublasLtMatmulDescSetAttribute(BIAS_POINTER)", context);
  }
  if (g.aux != nullptr) {
    set_attribute(raw_desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, g.aux,
                  "cublasLtMatmulDescSetAttribute(EPILOGUE_AUX_POINTER)", context);
    set_attribute(raw_desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, g.aux_ld,
                  "cublasLtMatmulDescSetAttribute(EPILOGUE_AUX_LD)", context);
  }

  // Stored shapes: op(A) is m×k, so A is k×m when transposed; likewise B.
  Layout a_layout = g.trans_a ? make_layout(g.input_type, g.k, g.m, g.lda, context)
                              : make_layout(g.input_type, g.m, g.k, g.lda, context);
  Layout b_layout = g.trans_b ? make_layout(g.input_type, g.n, g.k, g.ldb, context)
                              : make_layout(g.input_type, g.k, g.n, g.ldb, context);
  Layout d_layout = make_layout(g.output_type, g.m, g.n, g.ldd, context);
  if (g.batch > 1) {
    const int32_t count = static_cast<int32_t>(g.batch);
    const std::pair<cublasLtMatrixLayout_t, int64_t> batched[] = {
        {a_layout.get(), g.stride_a}, {b_layout.get(), g.stride_b}, {d_layout.get(), g.stride_d}};
    for (const auto& [layout, stride] : batched) {
      check_cublas(cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)),
                   "cublasLtMatrixLayoutSetAttribute(BATCH_COUNT)", context);
      check_cublas(cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                                    sizeof(stride)),
                   "cublasLtMatrixLayoutSetAttribute(STRIDED_BATCH_OFFSET)", context);
    }
  }

  const size_t in_bytes = g.input_type == CUDA_R_16BF ? 2 : 4;
  const size_t out_bytes = g.output_type == CUDA_R_16BF ? 2 : 4;
  const uint32_t alignment_a = alignment_bytes(g.a, g.batch, g.stride_a, in_bytes);
  const uint32_t alignment_b = alignment_bytes(g.b, g.batch, g.stride_b, in_bytes);
  const uint32_t alignment_d = alignment_bytes(g.d, g.batch, g.stride_d, out_bytes);
  // Everything the heuristic sees (pointers only through their alignment; beta not at all).
  const std::array<int64_t, 21> key{device,       compute,      g.trans_a,   g.trans_b,   g.m,
                                    g.n,          g.k,          g.lda,       g.ldb,       g.ldd,
                                    g.input_type, g.output_type, g.epilogue, g.bias != nullptr,
                                    g.aux_ld,     g.batch,      g.stride_a,  g.stride_b,  g.stride_d,
                                    alignment_a | (int64_t{alignment_b} << 16), alignment_d};
  auto cached = thread_state().algorithms.find(key);
  if (cached == thread_state().algorithms.end()) {
    const std::optional<cublasLtMatmulAlgo_t> algorithm =
        ask_heuristic(handle, raw_desc, a_layout.get(), b_layout.get(), d_layout.get(), g.epilogue, alignment_a,
                      alignment_b, alignment_d, context);
    cached = thread_state().algorithms.emplace(key, algorithm).first;
    if (!algorithm.has_value() && g.epilogue != CUBLASLT_EPILOGUE_DEFAULT) {
      thread_state().report.refused.push_back(context + " " + epilogue_name(g.epilogue));
    }
  }
  if (!cached->second.has_value()) return false;

  const float alpha = g.alpha;
  // C is D itself: beta = 0 overwrites (D's old contents are not read), beta = 1 accumulates.
  check_cublas(cublasLtMatmul(handle, raw_desc, &alpha, g.a, a_layout.get(), g.b, b_layout.get(), &g.beta, g.d,
                              d_layout.get(), g.d, d_layout.get(), &*cached->second, workspace, kGemmWorkspaceBytes,
                              stream),
               "cublasLtMatmul", context);
  if (g.epilogue != CUBLASLT_EPILOGUE_DEFAULT) ++thread_state().report.ran[epilogue_name(g.epilogue)];
  return true;
}

void run_gemm_or_throw(const Gemm& g, cudaStream_t stream, const char* caller) {
  if (!run_gemm(g, stream, caller)) {
    throw std::runtime_error(describe(caller, g) + ": cublasLtMatmulAlgoGetHeuristic found no algorithm");
  }
}

// ---------------------------------------------------------------------------------------------
// Elementwise and reduction kernels for what the epilogue cannot do.

// GELU, tanh form, as ops/cpu/gelu.cpp: x · sigmoid(2u), u = √(2/π)·(x + 0.044715·x³).
__device__ __forceinline__ float gelu(float x) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  const float u = kSqrt2OverPi * (x + 0.044715f * x * x * x);
  return x / (1.0f + expf(-2.0f * u));
}

// out (N×OC, already holding the product) += bias; then, with apply_gelu, pre_gelu = out (if not
// null) and out = gelu(out). Used when cuBLASLt offers no fused epilogue for the shape.
template <class Out>
__global__ void bias_gelu_kernel(Out* out, Out* pre_gelu, const Out* bias, int64_t N, int64_t OC, bool apply_gelu) {
  const int64_t total = N * OC;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float x = to_float(out[i]);
    if (bias != nullptr) x += to_float(bias[i % OC]);
    if (apply_gelu) {
      if (pre_gelu != nullptr) pre_gelu[i] = from_float<Out>(x);
      x = gelu(x);
    }
    out[i] = from_float<Out>(x);
  }
}

template <class Out>
void launch_bias_gelu(Out* out, Out* pre_gelu, const Out* bias, int64_t N, int64_t OC, bool apply_gelu,
                      cudaStream_t stream, const char* caller) {
  constexpr int kThreads = 256;
  const int64_t blocks = std::min<int64_t>((N * OC + kThreads - 1) / kThreads, 65536);
  bias_gelu_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(out, pre_gelu, bias, N, OC, apply_gelu);
  check_launch(std::string(caller) + ": bias_gelu_kernel (N=" + std::to_string(N) + " OC=" + std::to_string(OC) + ")");
}

// dbias, stage 1: partial[chunk, col] = Σ_{rows of chunk} dout[row, col]. A block covers 32·kWidth
// columns (thread x takes columns kWidth·x … kWidth·x + kWidth − 1 of the block's: one 16-byte vector
// per row when kWidth is kVectorElements, so a warp reads 512 contiguous bytes of a bf16 row) and one
// chunk of rows, strided over threadIdx.y. Each column is summed over its chunk in the same order
// either way (row thread y: rows y, y + 8, …; then the 8 row threads in order), so the vectorised and
// element-wise forms give the same bits.
constexpr int kBiasColumns = 32;
constexpr int kBiasRowThreads = 8;

template <class In, int kWidth>
__global__ void column_partial_sums_kernel(float* partial, const In* dout, int64_t N, int64_t OC, int64_t chunk_rows) {
  constexpr int kBlockColumns = kBiasColumns * kWidth;
  __shared__ float sums[kBiasRowThreads][kBlockColumns + 1];
  const int64_t block_column = static_cast<int64_t>(blockIdx.x) * kBlockColumns;
  const int64_t col = block_column + threadIdx.x * kWidth;  // the thread's first column
  const int64_t row_begin = blockIdx.y * chunk_rows;
  const int64_t row_end = row_begin + chunk_rows < N ? row_begin + chunk_rows : N;
  float sum[kWidth] = {};
  if (col < OC) {  // kWidth > 1 only when OC is a multiple of it: the whole vector is in range
    for (int64_t row = row_begin + threadIdx.y; row < row_end; row += kBiasRowThreads) {
      float values[kWidth];
      load_floats<kWidth>(values, dout + row * OC + col);
      for (int k = 0; k < kWidth; ++k) sum[k] += values[k];
    }
  }
  for (int k = 0; k < kWidth; ++k) sums[threadIdx.y][threadIdx.x * kWidth + k] = sum[k];
  __syncthreads();
  // One thread per column of the block adds the row threads' sums in order.
  const int local = static_cast<int>(threadIdx.y) * kBiasColumns + static_cast<int>(threadIdx.x);
  if (local >= kBlockColumns || block_column + local >= OC) return;
  float total = 0.0f;
  for (int y = 0; y < kBiasRowThreads; ++y) total += sums[y][local];  // fixed order
  partial[blockIdx.y * OC + block_column + local] = total;
}

// dbias, stage 2: dbias[col] += Σ_chunk partial[chunk, col], chunks in order.
template <class Out>
__global__ void add_partial_sums_kernel(Out* dbias, const float* partial, int64_t chunks, int64_t OC) {
  const int64_t col = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (col >= OC) return;
  float total = 0.0f;
  for (int64_t chunk = 0; chunk < chunks; ++chunk) total += partial[chunk * OC + col];
  dbias[col] = from_float<Out>(to_float(dbias[col]) + total);
}

template <class Out, class In>
void add_column_sums(Out* dbias, const In* dout, int64_t N, int64_t OC, cudaStream_t stream) {
  const std::string context = "matmul_backward dbias (N=" + std::to_string(N) + " OC=" + std::to_string(OC) + ")";
  // Enough row chunks to fill the GPU on GPT-2's shapes (N = B·T up to ~10⁵), at least 256 rows
  // each; the partial sums live in this stream's cuBLASLt workspace, which the products before and
  // after use only in stream order.
  const int64_t max_chunks_in_workspace = static_cast<int64_t>(kWorkspaceBytes / sizeof(float)) / OC;
  if (max_chunks_in_workspace < 1) throw std::runtime_error(context + ": OC too large for the workspace");
  const int64_t chunks = std::clamp<int64_t>((N + 255) / 256, 1, std::min<int64_t>(64, max_chunks_in_workspace));
  const int64_t chunk_rows = (N + chunks - 1) / chunks;
  float* partial = static_cast<float*>(workspace_for(current_device(), stream, context));
  const bool vectorized = OC % kVectorElements == 0 && detail::vector_aligned(dout);
  const int64_t block_columns = kBiasColumns * (vectorized ? kVectorElements : 1);
  const dim3 grid(static_cast<unsigned>((OC + block_columns - 1) / block_columns), static_cast<unsigned>(chunks));
  const auto kernel = vectorized ? column_partial_sums_kernel<In, kVectorElements> : column_partial_sums_kernel<In, 1>;
  kernel<<<grid, dim3(kBiasColumns, kBiasRowThreads), 0, stream>>>(partial, dout, N, OC, chunk_rows);
  check_launch(context + ": column_partial_sums_kernel");
  constexpr int kThreads = 256;
  add_partial_sums_kernel<<<static_cast<unsigned>((OC + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
      dbias, partial, chunks, OC);
  check_launch(context + ": add_partial_sums_kernel");
}

// Where the BGRADB epilogue writes its column sums: the tail of the stream's workspace, which
// cuBLASLt's own scratch (the first kGemmWorkspaceBytes) never reaches.
template <class Out>
Out* bias_gradient_scratch(cudaStream_t stream) {
  char* workspace = static_cast<char*>(workspace_for(current_device(), stream, "matmul_backward dbias"));
  return reinterpret_cast<Out*>(workspace + kGemmWorkspaceBytes);
}

void check_shape(const char* caller, int64_t N, int64_t C, int64_t OC) {
  if (N < 0 || C < 0 || OC < 0) {
    throw std::invalid_argument(std::string(caller) + ": negative shape N=" + std::to_string(N) +
                                " C=" + std::to_string(C) + " OC=" + std::to_string(OC));
  }
}

// D (m×n, column-major, ld ldd) = op(A) · op(B) (+ D when beta = 1): the one shape every product
// here has, with In operands and an Out result.
template <class Out, class In>
Gemm gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const In* a, int64_t lda, const In* b,
          int64_t ldb, Out* d, int64_t ldd, float beta) {
  Gemm g;
  g.trans_a = trans_a;
  g.trans_b = trans_b;
  g.m = m;
  g.n = n;
  g.k = k;
  g.a = a;
  g.lda = lda;
  g.b = b;
  g.ldb = ldb;
  g.input_type = data_type<In>();
  g.d = d;
  g.ldd = ldd;
  g.output_type = data_type<Out>();
  g.beta = beta;
  return g;
}

// The forward product, row-major out (N×OC) = inp (N×C) · weightᵀ, seen column-major as
// outᵀ (OC×N) = weight_cm-transposed · inpᵀ: A = weight (stored C×OC, transposed), B = inp
// (stored C×N), m = OC, n = N, k = C.
template <class Out, class In>
Gemm forward_gemm(Out* out, const In* inp, const In* weight, int64_t N, int64_t C, int64_t OC) {
  return gemm(true, false, OC, N, C, weight, C, inp, C, out, OC, 0.0f);
}

template <class Out, class In>
void forward_impl(Out* out, Out* pre_gelu, const In* inp, const In* weight, const Out* bias, int64_t N, int64_t C,
                  int64_t OC, bool apply_gelu, cudaStream_t stream, const char* caller) {
  check_shape(caller, N, C, OC);
  if (N == 0 || OC == 0) return;
  if (C == 0) {  // an empty product: out is the bias (or zero), through the activation
    check_cuda(cudaMemsetAsync(out, 0, static_cast<size_t>(N * OC) * sizeof(Out), stream), caller);
    launch_bias_gelu(out, pre_gelu, bias, N, OC, apply_gelu, stream, caller);
    return;
  }
  Gemm g = forward_gemm(out, inp, weight, N, C, OC);
  // The epilogue reads the bias and writes the GELU input through vector accesses: a pointer that is
  // not 16-byte aligned (a view at an odd offset) takes the plain product and our own pass instead.
  const bool epilogue_pointers_aligned = detail::vector_aligned(bias, pre_gelu);
  // GELU goes into the epilogue only for bf16 outputs: cuBLASLt's GELU is not documented to be
  // exact fp32 (it may use a fast tanh), which is far below bf16's rounding but could exceed the
  // 1e-5 that fp32 must match the CPU to. Saving the GELU input (aux) also needs OC divisible by 8.
  const bool fuse_gelu =
      apply_gelu && std::is_same_v<Out, __nv_bfloat16> && (pre_gelu == nullptr || OC % 8 == 0);
  if (!epilogue_pointers_aligned) {
    run_gemm_or_throw(g, stream, caller);
    if (bias != nullptr || apply_gelu) launch_bias_gelu(out, pre_gelu, bias, N, OC, apply_gelu, stream, caller);
    return;
  }
  g.bias = bias;
  if (fuse_gelu && pre_gelu != nullptr) {
    g.epilogue = bias != nullptr ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX;
    g.aux = pre_gelu;
    g.aux_ld = OC;
  } else if (fuse_gelu) {
    g.epilogue = bias != nullptr ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
  } else {
    g.epilogue = bias != nullptr ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
  }
  if (run_gemm(g, stream, caller)) {
    // Bias (if any) is in; a GELU the epilogue did not take runs as its own pass.
    if (apply_gelu && !fuse_gelu) launch_bias_gelu<Out>(out, pre_gelu, nullptr, N, OC, true, stream, caller);
    return;
  }
  // No algorithm for that epilogue: the plain product, then bias and GELU in one elementwise pass.
  g.epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  g.bias = nullptr;
  g.aux = nullptr;
  g.aux_ld = 0;
  run_gemm_or_throw(g, stream, caller);
  if (bias != nullptr || apply_gelu) launch_bias_gelu(out, pre_gelu, bias, N, OC, apply_gelu, stream, caller);
}

}  // namespace

template <class Out, class In>
void matmul_forward(Out* out, const In* inp, const In* weight, const Out* bias, int64_t N, int64_t C, int64_t OC,
                    cudaStream_t stream) {
  forward_impl<Out, In>(out, nullptr, inp, weight, bias, N, C, OC, false, stream, "matmul_forward");
}

template <class Out, class In>
void matmul_forward_gelu(Out* out, Out* pre_gelu, const In* inp, const In* weight, const Out* bias, int64_t N,
                         int64_t C, int64_t OC, cudaStream_t stream) {
  forward_impl<Out, In>(out, pre_gelu, inp, weight, bias, N, C, OC, true, stream, "matmul_forward_gelu");
}

template <class Out, class In>
void matmul_backward(Out* dinp, Out* dweight, Out* dbias, const In* dout, const In* inp, const In* weight,
                     int64_t N, int64_t C, int64_t OC, cudaStream_t stream, bool overwrite_dinp) {
  check_shape("matmul_backward", N, C, OC);
  if (N == 0 || C == 0 || OC == 0) {
    // Every gradient is an empty sum (nothing to add) except dbias when only C is 0; an overwritten
    // dinp is that empty sum: zeros.
    if (overwrite_dinp && dinp != nullptr && N > 0 && C > 0)
      check_cuda(cudaMemsetAsync(dinp, 0, static_cast<size_t>(N * C) * sizeof(Out), stream), "matmul_backward");
    if (dbias != nullptr && N > 0 && OC > 0) add_column_sums(dbias, dout, N, OC, stream);
    return;
  }
  if (dinp != nullptr) {
    // dinp (N×C) += dout (N×OC) · weight (OC×C); column-major dinpᵀ (C×N) += weight_cm (C×OC) · doutᵀ (OC×N).
    const Gemm g = gemm(false, false, C, N, OC, weight, C, dout, OC, dinp, C, overwrite_dinp ? 0.0f : 1.0f);
    run_gemm_or_throw(g, stream, "matmul_backward dinp");
  }
  if (dweight != nullptr) {
    // dweight (OC×C) += doutᵀ (OC×N) · inp (N×C); column-major dweightᵀ (C×OC) += inpᵀ (C×N) · dout (N×OC),
    // where dout stored column-major is OC×N, so B is transposed.
    Gemm g = gemm(false, true, C, OC, N, inp, C, dout, OC, dweight, C, 1.0f);
    if (dbias != nullptr && thread_state().bias_gradient_epilogue &&
        static_cast<size_t>(OC) * sizeof(Out) <= kBiasGradientBytes) {
      // BGRADB writes the column sums of op(B) = dout (N×OC), one per column of D, rather than adding
      // them: they land in the workspace's tail and are added to dbias after the product.
      Out* column_sums = bias_gradient_scratch<Out>(stream);
      g.epilogue = CUBLASLT_EPILOGUE_BGRADB;
      g.bias = column_sums;
      if (run_gemm(g, stream, "matmul_backward dweight and dbias")) {
        axpy(dbias, column_sums, 1.0f, OC, stream);
        return;
      }
      g.epilogue = CUBLASLT_EPILOGUE_DEFAULT;
      g.bias = nullptr;
    }
    run_gemm_or_throw(g, stream, "matmul_backward dweight");
  }
  if (dbias != nullptr) add_column_sums(dbias, dout, N, OC, stream);
}

template <class Out, class In>
void matmul_backward_dgelu(Out* dpre, const In* dout, const In* weight, const Out* pre, int64_t N, int64_t C,
                           int64_t OC, cudaStream_t stream) {
  const char* caller = "matmul_backward_dgelu";
  check_shape(caller, N, C, OC);
  if (N == 0 || C == 0) return;
  if (OC == 0) {  // an empty product: the input gradient, and so dpre, is zero
    check_cuda(cudaMemsetAsync(dpre, 0, static_cast<size_t>(N * C) * sizeof(Out), stream), caller);
    return;
  }
  // As matmul_backward's dinp, overwritten: column-major dpreᵀ (C×N) = weight_cm (C×OC) · doutᵀ (OC×N).
  Gemm g = gemm(false, false, C, N, OC, weight, C, dout, OC, dpre, C, 0.0f);
  // The DGELU epilogue reads pre (column-major C×N, ld C, like D) as its aux matrix and multiplies
  // the product by gelu'(pre) before the one rounding. bf16 only, as the forward's GELU epilogue
  // (cuBLASLt's derivative is not documented to be exact fp32); aux needs C divisible by 8 and 16-byte
  // alignment.
  if (std::is_same_v<Out, __nv_bfloat16> && C % 8 == 0 && detail::vector_aligned(pre)) {
    g.epilogue = CUBLASLT_EPILOGUE_DGELU;
    g.aux = const_cast<Out*>(pre);  // read, not written, under DGELU; the attribute is a void*
    g.aux_ld = C;
    if (run_gemm(g, stream, caller)) return;
    g.epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    g.aux = nullptr;
    g.aux_ld = 0;
  }
  // The plain product into dpre, then GELU's derivative in place (one elementwise pass).
  run_gemm_or_throw(g, stream, caller);
  gelu_backward(dpre, pre, dpre, N * C, stream, /*overwrite=*/true);
}

template <class Out, class In>
void batched_matmul(Out* c, const In* a, const In* b, int64_t batch, int64_t M, int64_t N, int64_t K, bool trans_a,
                    bool trans_b, int64_t stride_a, int64_t stride_b, int64_t stride_c, float alpha, float beta,
                    cudaStream_t stream) {
  if (batch < 0 || M < 0 || N < 0 || K < 0) {
    throw std::invalid_argument("batched_matmul: negative shape batch=" + std::to_string(batch) + " M=" +
                                std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K));
  }
  if (batch == 0 || M == 0 || N == 0 || K == 0) return;  // callers only use K > 0
  // Row-major C (M×N) is column-major Cᵀ (N×M) = op(B)ᵀ · op(A)ᵀ: cuBLASLt's A is our B and its B
  // is our A, with the same transposes. Row-major storage: A is M×K (K×M when trans_a), B is K×N
  // (N×K when trans_b), all dense.
  Gemm g = gemm(trans_b, trans_a, N, M, K, b, trans_b ? K : N, a, trans_a ? M : K, c, N, beta);
  g.alpha = alpha;
  g.batch = batch;
  g.stride_a = stride_b;
  g.stride_b = stride_a;
  g.stride_d = stride_c;
  run_gemm_or_throw(g, stream, "batched_matmul");
}

template void batched_matmul<float, __nv_bfloat16>(float*, const __nv_bfloat16*, const __nv_bfloat16*, int64_t,
                                                   int64_t, int64_t, int64_t, bool, bool, int64_t, int64_t, int64_t,
                                                   float, float, cudaStream_t);
template void batched_matmul<__nv_bfloat16, __nv_bfloat16>(__nv_bfloat16*, const __nv_bfloat16*,
                                                           const __nv_bfloat16*, int64_t, int64_t, int64_t, int64_t,
                                                           bool, bool, int64_t, int64_t, int64_t, float, float,
                                                           cudaStream_t);
template void batched_matmul<float, float>(float*, const float*, const float*, int64_t, int64_t, int64_t, int64_t,
                                           bool, bool, int64_t, int64_t, int64_t, float, float, cudaStream_t);

void set_matmul_tf32(bool enabled) { thread_state().allow_tf32 = enabled; }

void set_matmul_bias_gradient_epilogue(bool enabled) { thread_state().bias_gradient_epilogue = enabled; }

MatmulEpilogueReport matmul_epilogue_report() { return thread_state().report; }

std::string to_string(const MatmulEpilogueReport& report) {
  std::string text = "cuBLASLt epilogues that ran:";
  for (const auto& [epilogue, count] : report.ran) text += " " + epilogue + " (" + std::to_string(count) + " products)";
  if (report.ran.empty()) text += " none";
  text += "\ncuBLASLt epilogues refused:";
  if (report.refused.empty()) text += " none";
  for (const std::string& refused : report.refused) text += "\n  " + refused;
  return text + "\n";
}

void release_matmul_resources() { thread_state().release(); }

#define MERIDIAN_INSTANTIATE_MATMUL(Out, In)                                                                     \
  template void matmul_forward<Out, In>(Out*, const In*, const In*, const Out*, int64_t, int64_t, int64_t,      \
                                        cudaStream_t);                                                         \
  template void matmul_forward_gelu<Out, In>(Out*, Out*, const In*, const In*, const Out*, int64_t, int64_t,    \
                                             int64_t, cudaStream_t);                                           \
  template void matmul_backward<Out, In>(Out*, Out*, Out*, const In*, const In*, const In*, int64_t, int64_t,   \
                                         int64_t, cudaStream_t, bool);                                         \
  template void matmul_backward_dgelu<Out, In>(Out*, const In*, const In*, const Out*, int64_t, int64_t,        \
                                               int64_t, cudaStream_t);

MERIDIAN_INSTANTIATE_MATMUL(float, float)
MERIDIAN_INSTANTIATE_MATMUL(__nv_bfloat16, __nv_bfloat16)
MERIDIAN_INSTANTIATE_MATMUL(float, __nv_bfloat16)

#undef MERIDIAN_INSTANTIATE_MATMUL

}  // namespace meridian::ops::cuda
