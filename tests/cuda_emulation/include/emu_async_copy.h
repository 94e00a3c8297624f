#pragma once
// cp.async on the host (ops/cuda/async_copy.cuh). A copy is recorded with the group it will belong to and
// runs when its thread waits for that group, as late as a GPU may run it: a thread that reads shared
// memory before it waited, or before the other threads' copies are waited for and a __syncthreads
// passed, reads the NaN bytes shared memory starts with, or an older tile. Under EMU_REVERSE each copy
// runs when it is issued instead, as early as a GPU may run it: a copy into a buffer other warps still
// read then changes what they read.
#include "emu_cuda.h"

namespace emu {

inline void copy_async(void* target, const void* source, unsigned bytes, unsigned source_bytes) {
  if (reinterpret_cast<uintptr_t>(target) % bytes != 0 || reinterpret_cast<uintptr_t>(source) % bytes != 0)
    warn("cp.async: a " + std::to_string(bytes) + "-byte copy whose addresses are not " + std::to_string(bytes) +
         "-byte aligned");
  if (is_device_pointer(target)) warn("cp.async: the target is global memory, not shared");
  if (!device_range_ok(source, source_bytes)) warn("cp.async: the source is not device memory");
  AsyncCopy copy{static_cast<unsigned char*>(target), static_cast<const unsigned char*>(source), bytes, source_bytes,
                 cur->async_groups};
  if (reverse_order()) {
    copy.run();
  } else {
    cur->async_copies.push_back(copy);
  }
}

inline void commit_async_copies() { cur->async_groups++; }

inline void wait_async_copies(int pending) {
  auto& copies = cur->async_copies;
  const unsigned committed = cur->async_groups;
  size_t kept = 0;
  for (size_t i = 0; i < copies.size(); ++i) {
    // Uncommitted copies (group == committed) are not waited for; of the committed, all but the newest
    // `pending` groups are.
    if (copies[i].group + static_cast<unsigned>(pending) < committed) {
      copies[i].run();
    } else {
      copies[kept++] = copies[i];
    }
  }
  copies.resize(kept);
}

}  // namespace emu
