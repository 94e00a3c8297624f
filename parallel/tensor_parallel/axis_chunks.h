#pragma once
// Collectives move rank-major buffers: chunk r of an all-gather's output is rank r's piece, and
// chunk r of a reduce-scatter's input is what rank r receives. A tensor split along an inner axis
// (the hidden axis, or the sequence axis of (B, T, C)) is not laid out that way, so the maps copy
// between the two layouts. With the axis cut into `parts` equal chunks, the tensor is
// (outer, parts, chunk) and the buffer (parts, outer, chunk).
#include <cstdint>
#include <string_view>

#include "core/tensor.h"

namespace meridian::parallel {

struct AxisSplit {
  int64_t outer = 0;  // Π shape[:axis]
  int64_t parts = 1;
  int64_t chunk = 0;  // shape[axis]/parts · Π shape[axis+1:]
};

// Splits `shape` along `axis` (negative counts from the end) into `parts`; throws naming `what`
// when the axis does not divide.
AxisSplit split_axis(const Shape& shape, int axis, int64_t parts, std::string_view what);

// Element moves only, between contiguous tensors of one dtype on one device (cpu: memcpy per chunk;
// cuda: one strided 2D copy per part, on the device's compute stream).
// dst (parts, outer, chunk) ← src (outer, parts, chunk)
void to_rank_major(const Tensor& dst, const Tensor& src, const AxisSplit& split);
// dst (outer, parts, chunk) ← src (parts, outer, chunk)
void from_rank_major(const Tensor& dst, const Tensor& src, const AxisSplit& split);
// dst (outer, chunk) ← part `part` of src (outer, parts, chunk)
void copy_part(const Tensor& dst, const Tensor& src, const AxisSplit& split, int64_t part);

}  // namespace meridian::parallel
