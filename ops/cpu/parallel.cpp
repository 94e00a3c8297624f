#include "ops/cpu/parallel.h"

#include <omp.h>

namespace meridian::ops::cpu {

void set_num_threads(int threads) {
  if (threads > 0) omp_set_num_threads(threads);
}

int num_threads() { return omp_get_max_threads(); }

}  // namespace meridian::ops::cpu
