#pragma once
// How the cpu kernels, which take float*, run bf16 tensors (mixed precision on the cpu).
//
// A FloatView of an f32 tensor is the tensor's own memory. Of a bf16 tensor it is a widened copy
// (exact), and when the view is written (overwrite or accumulate) its values are rounded back into the
// tensor once, as the view ends. So a function on bf16 inputs computes in fp32 and rounds each output
// once: the contract of the bf16 CUDA kernels, which keeps the cpu and the GPU within bf16 precision
// of each other and lets the cpu engine check the GPU's mixed precision. It costs a copy per bf16
// operand: the cpu bf16 path is for checking and for memory, not for speed.
#include <memory>

#include "core/tensor.h"

namespace meridian::fn::detail {

class FloatView {
 public:
  enum class Access { read, overwrite, accumulate };

  // An undefined tensor gives a null view (an input that needs no gradient).
  FloatView(const Tensor& tensor, Access access);
  ~FloatView();
  FloatView(const FloatView&) = delete;
  FloatView& operator=(const FloatView&) = delete;

  float* data() const { return data_; }

 private:
  Tensor tensor_;
  Access access_;
  std::unique_ptr<float[]> widened_;  // uninitialised: overwritten or filled from the tensor
  float* data_ = nullptr;
};

}  // namespace meridian::fn::detail
