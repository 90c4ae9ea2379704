// A small persistent thread pool for the kernels: parallel_for splits [0, n) into one contiguous chunk per
// thread; the calling thread runs the first chunk. Work below `grain` items per thread runs inline, since a
// wake-up costs microseconds. Nested calls (from inside a chunk) run inline.
#pragma once
#include <cstdint>
#include <functional>

namespace maclm {

int num_threads();
void set_num_threads(int n);

// fn(begin, end) over disjoint ranges covering [0, n).
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace maclm
