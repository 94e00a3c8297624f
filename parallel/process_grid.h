#pragma once
// The process grid: world ranks laid out once as a tp × dp × pp grid, each rank's coordinates in
// it, and one communicator per axis (picotron's process_group_manager, Megatron's parallel_state).
//
// Layout, innermost axis first: tensor-parallel ranks are neighbours (they talk most and should
// share a node), then data-parallel, then pipeline outermost:
//
//     world_rank = pp_rank · (dp · tp) + dp_rank · tp + tp_rank
//
// e.g. tp=2, dp=2, pp=2: ranks 0,1 form a tp group; 0,2 a dp group; 0,4 a pp group.
// An axis's group holds the ranks that differ from this one only in that axis, ordered by their
// coordinate along it, so group(axis).rank() == coordinate(axis).
//
// Room for the future: a cross-region axis goes outside pp (region_rank · pp·dp·tp + ...). Adding
// it means one more Axis value at the end, one more extent in GridShape; the arithmetic below is
// written over kAxisCount axes and does not change.
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "parallel/comm/communicator.h"

namespace meridian::parallel {

enum class Axis : uint8_t { tp = 0, dp = 1, pp = 2 };  // innermost first
inline constexpr int kAxisCount = 3;
inline constexpr std::array<Axis, kAxisCount> kAxes = {Axis::tp, Axis::dp, Axis::pp};

std::string_view axis_name(Axis axis);  // "tp", "dp", "pp": also the names of the groups

struct GridShape {
  int tp = 1;
  int dp = 1;
  int pp = 1;

  int extent(Axis axis) const;
  int64_t world_size() const { return static_cast<int64_t>(tp) * dp * pp; }
  std::string to_string() const;  // "tp=2 dp=2 pp=1"
};

struct GridCoordinates {
  int tp = 0;
  int dp = 0;
  int pp = 0;

  int operator[](Axis axis) const;
  int& operator[](Axis axis);
  bool operator==(const GridCoordinates&) const = default;
};

// The arithmetic of the layout alone: no communication, usable for any world size.
class GridLayout {
 public:
  explicit GridLayout(GridShape shape);  // throws unless every extent is >= 1

  const GridShape& shape() const { return shape_; }
  int world_size() const { return static_cast<int>(shape_.world_size()); }
  // Distance in world ranks between neighbours along `axis`: 1 for tp, tp for dp, tp·dp for pp.
  int stride(Axis axis) const;
  int world_rank(const GridCoordinates& coordinates) const;
  GridCoordinates coordinates(int world_rank) const;
  // World ranks that share every coordinate with `world_rank` except `axis`, in axis order.
  std::vector<int> axis_members(int world_rank, Axis axis) const;

 private:
  GridShape shape_;
};

class ProcessGrid {
 public:
  // Collective over `world` (one split per axis, in axis order). Throws when tp·dp·pp is not the
  // world's size.
  ProcessGrid(std::shared_ptr<comm::Communicator> world, GridShape shape);

  const GridLayout& layout() const { return layout_; }
  const GridShape& shape() const { return layout_.shape(); }
  const GridCoordinates& coordinates() const { return coordinates_; }
  int coordinate(Axis axis) const { return coordinates_[axis]; }

  comm::Communicator& world() const { return *world_; }
  comm::Communicator& group(Axis axis) const { return *groups_[static_cast<size_t>(axis)]; }
  const std::shared_ptr<comm::Communicator>& group_ptr(Axis axis) const {
    return groups_[static_cast<size_t>(axis)];
  }
  comm::Communicator& tp() const { return group(Axis::tp); }
  comm::Communicator& dp() const { return group(Axis::dp); }
  comm::Communicator& pp() const { return group(Axis::pp); }

 private:
  std::shared_ptr<comm::Communicator> world_;
  GridLayout layout_;
  GridCoordinates coordinates_;
  std::array<std::shared_ptr<comm::Communicator>, kAxisCount> groups_;
};

}  // namespace meridian::parallel
