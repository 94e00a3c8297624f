// The tensor-parallel maps' layout moves (parallel/tensor_parallel/axis_chunks.h) on cuda tensors
// against the same moves on the cpu: bit-identical (they only move bytes), f32 and bf16, for the
// hidden axis (many rows) and the sequence axis of (B, T, C).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/tensor.h"
#include "cuda_test_support.h"
#include "parallel/tensor_parallel/axis_chunks.h"

namespace meridian::parallel {
namespace {

Tensor numbered(const Shape& shape, DType dtype) {
  std::vector<float> values(static_cast<size_t>(shape_numel(shape)));
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i % 251) - 100.0f;
  return Tensor::from_vector(values, shape).to(dtype);
}

void check(const Shape& shape, int axis, int64_t parts, DType dtype) {
  SCOPED_TRACE(shape_str(shape) + " axis " + std::to_string(axis) + " parts " + std::to_string(parts) + " " +
               std::string(dtype_name(dtype)));
  const Device gpu = Device::cuda(0);
  const AxisSplit split = split_axis(shape, axis, parts, "test");
  const Tensor host = numbered(shape, dtype), device = host.to(gpu);
  const int64_t n = shape_numel(shape);

  Tensor host_rank_major = Tensor::empty({n}, dtype), device_rank_major = Tensor::full({n}, -7.0).to(dtype).to(gpu);
  to_rank_major(host_rank_major, host, split);
  to_rank_major(device_rank_major, device, split);
  EXPECT_EQ(device_rank_major.to_float_vector(), host_rank_major.to_float_vector()) << "to_rank_major";

  Tensor back = Tensor::full(shape, -7.0).to(dtype).to(gpu);
  from_rank_major(back, device_rank_major, split);
  EXPECT_EQ(back.to_float_vector(), host.to_float_vector()) << "from_rank_major undoes to_rank_major";

  Shape part_shape = shape;
  part_shape.at(static_cast<size_t>(axis < 0 ? axis + static_cast<int>(shape.size()) : axis)) /= parts;
  for (int64_t part = 0; part < parts; ++part) {
    Tensor host_part = Tensor::empty(part_shape, dtype), device_part = Tensor::full(part_shape, -7.0).to(dtype).to(gpu);
    copy_part(host_part, host, split, part);
    copy_part(device_part, device, split, part);
    EXPECT_EQ(device_part.to_float_vector(), host_part.to_float_vector()) << "copy_part " << part;
  }
}

TEST(CudaAxisChunks, MoveLikeTheCpu) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  for (const DType dtype : {DType::f32, DType::bf16}) {
    check({3, 5, 12}, -1, 4, dtype);  // hidden axis: 15 rows of 3-element chunks per part
    check({3, 8, 6}, 1, 2, dtype);    // sequence axis: 3 rows of 4·6-element chunks per part
    check({2, 6, 10}, 0, 2, dtype);   // the outermost axis: one row per part
  }
}

}  // namespace
}  // namespace meridian::parallel
