#pragma once
// Writes a Timeline as Chrome trace-event JSON (the "JSON Object Format": {"traceEvents": [...]}),
// which Perfetto (ui.perfetto.dev) and chrome://tracing open. One process per rank (pid = world
// rank, named with its grid coordinates), two threads: compute (forward, backward,
// weight_gradient, optimizer, idle) and communication (send, recv, data_parallel). Complete events
// ("ph": "X") with microsecond timestamps; `cat` is the category, `args` the micro-batch, chunk,
// peer and size. Each step's bubble fraction is a counter ("ph": "C", name bubble_fraction). Files
// of several ranks merge by concatenating their traceEvents arrays.
#include <string>

#include "parallel/pipeline/timeline.h"

namespace meridian::parallel {

// Throws meridian::Error naming the path when it cannot be written.
void write_chrome_trace(const Timeline& timeline, const std::string& path, int world_rank,
                        const std::string& process_label);

}  // namespace meridian::parallel
