#pragma once
// Meridian dtypes and reductions in MPI's terms. bf16 and f16 have no MPI type: they travel as
// 16-bit words and reduce with user-defined operations that compute in float and round back
// (like NCCL, each reduction step rounds to the storage type).
#include <mpi.h>

#include <cstdint>

#include "core/dtype.h"
#include "parallel/comm/collective_checks.h"
#include "parallel/comm/reduce_op.h"

namespace meridian::comm {

MPI_Datatype mpi_element_type(DType dtype);
// avg reduces with the sum; the caller divides afterwards (divide_in_place).
MPI_Op mpi_reduce_op(DType dtype, ReduceOp op);
void divide_in_place(void* data, DType dtype, int64_t count, int divisor);
// MPI-3.1 counts are int: throws when a buffer holds more elements than that.
int mpi_count(const OpContext& context, int64_t elements);

}  // namespace meridian::comm
