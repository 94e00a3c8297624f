#pragma once
// Argument checks and launch helpers shared by the attention kernels (attention.cu, the CUDA-core
// flash kernel, and flash_attention.cu, the tensor-core one): both take the fused (B, T, 3C) qkv
// layout with NH heads of C/NH channels and scale scores by 1/√(C/NH).
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "ops/cuda/kernel_common.cuh"

namespace meridian::ops::cuda::detail {

struct AttentionShape {
  int64_t B, T, C, NH;
  int head_size;
  float scale;
};

// Throws std::invalid_argument naming the caller and the shape unless C = NH · head_size with a
// head size of at most max_head_size and a multiple of head_size_multiple, and B · NH fits a grid's
// y dimension.
inline AttentionShape check_attention_shape(const char* caller, int64_t B, int64_t T, int64_t C, int64_t NH,
                                            int64_t max_head_size = 128, int64_t head_size_multiple = 1) {
  const std::string text = std::string(caller) + ": B=" + std::to_string(B) + " T=" + std::to_string(T) +
                           " C=" + std::to_string(C) + " NH=" + std::to_string(NH);
  if (B < 0 || T < 0 || NH <= 0 || C <= 0 || C % NH != 0) {
    throw std::invalid_argument(text + ": need C divisible by NH > 0");
  }
  if (C / NH > max_head_size) {
    throw std::invalid_argument(text + ": head size above " + std::to_string(max_head_size));
  }
  if ((C / NH) % head_size_multiple != 0) {
    throw std::invalid_argument(text + ": head size not a multiple of " + std::to_string(head_size_multiple));
  }
  if (B * NH > 65535) throw std::invalid_argument(text + ": B·NH above 65535 (grid y limit)");
  const int head_size = static_cast<int>(C / NH);
  return {B, T, C, NH, head_size, 1.0f / std::sqrt(static_cast<float>(head_size))};
}

inline std::string shape_text(const char* kernel, const AttentionShape& s) {
  return std::string(kernel) + " (B=" + std::to_string(s.B) + " T=" + std::to_string(s.T) + " C=" +
         std::to_string(s.C) + " NH=" + std::to_string(s.NH) + ")";
}

// Dynamic shared memory above 48 KiB must be requested per kernel (Ampere and Hopper have ≥ 163 KiB).
template <class Kernel>
void allow_shared_memory(Kernel kernel, size_t bytes, const std::string& what) {
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
             what + ": cudaFuncSetAttribute(MaxDynamicSharedMemorySize)");
}

}  // namespace meridian::ops::cuda::detail
