#include "parallel/comm/reduce_op.h"

namespace meridian::comm {

std::string_view reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
      return "sum";
    case ReduceOp::avg:
      return "avg";
    case ReduceOp::max:
      return "max";
  }
  return "unknown";
}

}  // namespace meridian::comm
