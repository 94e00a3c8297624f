#pragma once
// How a reducing collective combines the ranks' values.
#include <cstdint>
#include <string_view>

namespace meridian::comm {

enum class ReduceOp : uint8_t {
  sum,
  avg,  // sum divided by the group size (floating dtypes only)
  max,
};

std::string_view reduce_op_name(ReduceOp op);

}  // namespace meridian::comm
