// A dynamic schedule for CPU kernels: workers take grabs of items from a shared counter. The cores
// of the machines we run on are often shared, and a static split waits for the slowest thread.
// Which items a worker takes varies from run to run, so callers make each item's result
// independent of the worker (no shared accumulation in item order).
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

namespace scalevgae {
namespace cpu {

// Runs work(k0, k1) over [0, n) in grabs of `grab` items, on up to `max_workers` threads (at most
// at::get_num_threads()). make_worker() is called once per worker and returns its work callable
// (which may own per-worker scratch).
template <typename MakeWorker>
void dynamic_for(int64_t n, int64_t grab, int64_t max_workers, const MakeWorker& make_worker) {
  if (n <= 0) return;
  const int64_t workers =
      std::max<int64_t>(1, std::min<int64_t>({max_workers, at::get_num_threads(), n}));
  std::atomic<int64_t> next{0};
  at::parallel_for(0, workers, 1, [&](int64_t w0, int64_t w1) {
    for (int64_t w = w0; w < w1; ++w) {
      auto work = make_worker();
      for (int64_t k0 = next.fetch_add(grab); k0 < n; k0 = next.fetch_add(grab))
        work(k0, std::min(k0 + grab, n));
    }
  });
}

}  // namespace cpu
}  // namespace scalevgae
