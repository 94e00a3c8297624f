#include "core/functions/working_copies.h"

#include <map>
#include <utility>

#include "core/profiler.h"

namespace meridian::fn {

struct WorkingCopies::Cache {
  struct Entry {
    std::shared_ptr<TensorImpl> source;  // held, so that its address names it while the scope is open
    std::shared_ptr<Storage> storage;    // where the source lived when it was converted (held: no reuse)
    int64_t offset = 0;
    Tensor copy;
  };
  std::map<std::pair<const TensorImpl*, DType>, Entry> entries;
  int64_t conversions = 0;
};

namespace {

thread_local WorkingCopies::Cache* t_cache = nullptr;

Tensor convert(const Tensor& weight, DType dtype) {
  profiler::Scope scope("weight_copy");
  return weight.to(dtype);
}

}  // namespace

WorkingCopies::WorkingCopies() {
  if (t_cache != nullptr) return;
  owned_ = std::make_unique<Cache>();
  t_cache = owned_.get();
}

WorkingCopies::~WorkingCopies() {
  if (owned_ != nullptr) t_cache = nullptr;
}

int64_t WorkingCopies::conversions() const { return t_cache != nullptr ? t_cache->conversions : 0; }

size_t WorkingCopies::bytes() const {
  size_t total = 0;
  if (t_cache != nullptr)
    for (const auto& entry : t_cache->entries) total += entry.second.copy.nbytes();
  return total;
}

bool working_copies_open() { return t_cache != nullptr; }

namespace detail {

Tensor working_copy(const Tensor& weight, DType dtype) {
  if (!weight.defined()) return Tensor();
  if (weight.dtype() == dtype) return weight.detach();
  // Only trained parameters: a computed weight, or a detached or frozen tensor (a new handle per
  // call, or values the caller may change), would never be found again and would only be held.
  if (t_cache == nullptr || !weight.is_leaf() || !weight.requires_grad()) return convert(weight, dtype);
  WorkingCopies::Cache::Entry& entry = t_cache->entries[{weight.impl(), dtype}];
  const std::shared_ptr<Storage>& storage = weight.storage();
  if (entry.copy.defined() && entry.storage == storage && entry.offset == weight.storage_offset()) return entry.copy;
  // First use, or the weight moved to other storage since (its values may differ): convert it now.
  entry = {weight.impl_ptr(), storage, weight.storage_offset(), convert(weight, dtype)};
  ++t_cache->conversions;
  return entry.copy;
}

}  // namespace detail

}  // namespace meridian::fn
