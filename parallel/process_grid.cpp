#include "parallel/process_grid.h"

#include "core/error.h"

namespace meridian::parallel {

std::string_view axis_name(Axis axis) {
  switch (axis) {
    case Axis::tp:
      return "tp";
    case Axis::dp:
      return "dp";
    case Axis::pp:
      return "pp";
  }
  return "unknown";
}

int GridShape::extent(Axis axis) const {
  switch (axis) {
    case Axis::tp:
      return tp;
    case Axis::dp:
      return dp;
    case Axis::pp:
      return pp;
  }
  MERIDIAN_FAIL("unknown grid axis ", static_cast<int>(axis));
}

std::string GridShape::to_string() const {
  return detail::concat("tp=", tp, " dp=", dp, " pp=", pp);
}

int GridCoordinates::operator[](Axis axis) const {
  return const_cast<GridCoordinates&>(*this)[axis];
}

int& GridCoordinates::operator[](Axis axis) {
  switch (axis) {
    case Axis::tp:
      return tp;
    case Axis::dp:
      return dp;
    case Axis::pp:
      return pp;
  }
  MERIDIAN_FAIL("unknown grid axis ", static_cast<int>(axis));
}

GridLayout::GridLayout(GridShape shape) : shape_(shape) {
  for (Axis axis : kAxes)
    if (shape_.extent(axis) < 1)
      MERIDIAN_FAIL("process grid ", shape_.to_string(), ": --", axis_name(axis),
                    " must be at least 1");
}

int GridLayout::stride(Axis axis) const {
  int stride = 1;
  for (Axis inner : kAxes) {
    if (inner == axis) return stride;
    stride *= shape_.extent(inner);
  }
  MERIDIAN_FAIL("unknown grid axis ", static_cast<int>(axis));
}

int GridLayout::world_rank(const GridCoordinates& coordinates) const {
  int rank = 0;
  for (Axis axis : kAxes) {
    const int coordinate = coordinates[axis];
    if (coordinate < 0 || coordinate >= shape_.extent(axis))
      MERIDIAN_FAIL("process grid ", shape_.to_string(), ": ", axis_name(axis), " coordinate ",
                    coordinate, " is out of range");
    rank += coordinate * stride(axis);
  }
  return rank;
}

GridCoordinates GridLayout::coordinates(int world_rank) const {
  if (world_rank < 0 || world_rank >= world_size())
    MERIDIAN_FAIL("process grid ", shape_.to_string(), ": world rank ", world_rank,
                  " is outside 0..", world_size() - 1);
  GridCoordinates out;
  for (Axis axis : kAxes) out[axis] = world_rank / stride(axis) % shape_.extent(axis);
  return out;
}

std::vector<int> GridLayout::axis_members(int world_rank, Axis axis) const {
  GridCoordinates line = coordinates(world_rank);
  std::vector<int> members;
  members.reserve(static_cast<size_t>(shape_.extent(axis)));
  for (int index = 0; index < shape_.extent(axis); ++index) {
    line[axis] = index;
    members.push_back(this->world_rank(line));
  }
  return members;
}

ProcessGrid::ProcessGrid(std::shared_ptr<comm::Communicator> world, GridShape shape)
    : world_(std::move(world)), layout_(shape) {
  MERIDIAN_CHECK(world_ != nullptr, "a process grid needs the world communicator");
  if (layout_.world_size() != world_->size())
    MERIDIAN_FAIL("process grid ", shape.to_string(), " needs tp*dp*pp = ", shape.tp, "*", shape.dp,
                  "*", shape.pp, " = ", shape.world_size(), " ranks, but the world has ",
                  world_->size());
  coordinates_ = layout_.coordinates(world_->rank());
  for (Axis axis : kAxes) {
    // Ranks on one line along `axis` share its first member's world rank: a color unique to the
    // line. The key orders them by their coordinate along the axis.
    const int color = layout_.axis_members(world_->rank(), axis).front();
    auto group = world_->split(color, coordinates_[axis], std::string(axis_name(axis)));
    MERIDIAN_CHECK(
        group && group->size() == shape.extent(axis) && group->rank() == coordinates_[axis], "the ",
        axis_name(axis), " group of world rank ", world_->rank(), " came out wrong");
    groups_[static_cast<size_t>(axis)] = std::move(group);
  }
}

}  // namespace meridian::parallel
