#include "parallel/comm/mpi_datatypes.h"

#include <algorithm>
#include <limits>

#include "core/error.h"
#include "parallel/comm/mpi_check.h"

namespace meridian::comm {
namespace {

template <class Half, class Combine>
void combine_halves(const void* in, void* inout, int length, Combine combine) {
  const auto* a = static_cast<const Half*>(in);
  auto* b = static_cast<Half*>(inout);
  for (int i = 0; i < length; ++i)
    b[i] = Half(combine(static_cast<float>(a[i]), static_cast<float>(b[i])));
}

float add(float a, float b) { return a + b; }
float larger(float a, float b) { return std::max(a, b); }

void bf16_sum(void* in, void* inout, int* length, MPI_Datatype*) {
  combine_halves<bf16>(in, inout, *length, add);
}
void bf16_max(void* in, void* inout, int* length, MPI_Datatype*) {
  combine_halves<bf16>(in, inout, *length, larger);
}
void f16_sum(void* in, void* inout, int* length, MPI_Datatype*) {
  combine_halves<f16>(in, inout, *length, add);
}
void f16_max(void* in, void* inout, int* length, MPI_Datatype*) {
  combine_halves<f16>(in, inout, *length, larger);
}

// Created once, on first use (MPI must be initialised by then); MPI frees them at finalize.
struct HalfPrecisionOps {
  MPI_Op bf16_sum_op = MPI_OP_NULL, bf16_max_op = MPI_OP_NULL;
  MPI_Op f16_sum_op = MPI_OP_NULL, f16_max_op = MPI_OP_NULL;

  HalfPrecisionOps() {
    MERIDIAN_MPI_CHECK(MPI_Op_create(bf16_sum, /*commute=*/1, &bf16_sum_op));
    MERIDIAN_MPI_CHECK(MPI_Op_create(bf16_max, 1, &bf16_max_op));
    MERIDIAN_MPI_CHECK(MPI_Op_create(f16_sum, 1, &f16_sum_op));
    MERIDIAN_MPI_CHECK(MPI_Op_create(f16_max, 1, &f16_max_op));
  }
};

const HalfPrecisionOps& half_precision_ops() {
  static const HalfPrecisionOps ops;
  return ops;
}

template <class Half>
void divide_halves(void* data, int64_t count, float divisor) {
  auto* values = static_cast<Half*>(data);
  for (int64_t i = 0; i < count; ++i) values[i] = Half(static_cast<float>(values[i]) / divisor);
}

}  // namespace

MPI_Datatype mpi_element_type(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return MPI_FLOAT;
    case DType::i32:
      return MPI_INT32_T;
    case DType::bf16:
    case DType::f16:
    case DType::u16:
      return MPI_UINT16_T;
  }
  MERIDIAN_FAIL("no MPI datatype for dtype ", static_cast<int>(dtype));
}

MPI_Op mpi_reduce_op(DType dtype, ReduceOp op) {
  const bool maximum = op == ReduceOp::max;
  switch (dtype) {
    case DType::f32:
    case DType::i32:
      return maximum ? MPI_MAX : MPI_SUM;
    case DType::bf16:
      return maximum ? half_precision_ops().bf16_max_op : half_precision_ops().bf16_sum_op;
    case DType::f16:
      return maximum ? half_precision_ops().f16_max_op : half_precision_ops().f16_sum_op;
    case DType::u16:
      break;
  }
  MERIDIAN_FAIL("no MPI reduction for dtype ", dtype_name(dtype));
}

void divide_in_place(void* data, DType dtype, int64_t count, int divisor) {
  const auto scale = static_cast<float>(divisor);
  switch (dtype) {
    case DType::f32: {
      auto* values = static_cast<float*>(data);
      for (int64_t i = 0; i < count; ++i) values[i] /= scale;
      return;
    }
    case DType::bf16:
      divide_halves<bf16>(data, count, scale);
      return;
    case DType::f16:
      divide_halves<f16>(data, count, scale);
      return;
    case DType::i32:
    case DType::u16:
      break;
  }
  MERIDIAN_FAIL("cannot average dtype ", dtype_name(dtype));
}

int mpi_count(const OpContext& context, int64_t elements) {
  if (elements > std::numeric_limits<int>::max())
    MERIDIAN_FAIL(context.op, " on group ", context.group, ": ", elements,
                  " elements exceed the MPI backend's limit of 2^31-1 per call");
  return static_cast<int>(elements);
}

}  // namespace meridian::comm
