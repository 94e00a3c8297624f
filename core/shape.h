#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace meridian {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& shape);
Shape contiguous_strides(const Shape& shape);
std::string shape_str(const Shape& shape);  // "[4, 64, 768]"

}  // namespace meridian
