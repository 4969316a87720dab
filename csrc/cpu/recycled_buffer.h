// Recycled CPU output buffers for per-batch tensors of varying size (the loader's aggregated
// input features, sample.cpp): a few freed buffers are kept and handed out again instead of
// going back to glibc.
//
// Why: the loader thread allocates one ~30 MB tensor per batch, a few rows more or fewer each
// time, and the training thread frees it. glibc serves those from the loader thread's arena,
// whose heaps fragment: at 10^6 nodes its footprint grew from 26 to 233 MB over 400 steps with
// 73 MB in use (malloc_stats), the main cause of the run's peak RSS creeping up. Buffers here
// are whole 2 MB units mapped for themselves, so a kept one fits every batch of about the same
// size, its pages stay faulted in, and nothing fragments. The kept buffers (up to ~120 MB) are
// unmapped by release(), which scalevgae._memory.release_free_memory calls before full-graph
// inference and after other phases that end with memory to give back.
#pragma once

#include <ATen/ATen.h>
#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

namespace scalevgae {
namespace cpu {

class RecycledBuffers {
 public:
  static constexpr size_t kUnit = size_t(2) << 20;       // 2 MB: a huge page
  static constexpr size_t kMaxBytes = size_t(64) << 20;  // larger requests: the usual allocator
  static constexpr size_t kKeep = 4;                     // freed buffers kept for reuse

  // An uninitialised contiguous tensor of `sizes` with `opts` (CPU).
  at::Tensor empty(at::IntArrayRef sizes, const at::TensorOptions& opts) {
    int64_t numel = 1;
    for (int64_t s : sizes) numel *= s;
    const size_t bytes = static_cast<size_t>(numel) * opts.dtype().itemsize();
    if (bytes == 0 || bytes > kMaxBytes) return at::empty(sizes, opts);
    const size_t cap = (bytes + kUnit - 1) / kUnit * kUnit;
    void* p = take(cap);
    if (p == nullptr) return at::empty(sizes, opts);
    return at::from_blob(p, sizes, [this, cap](void* q) { give_back(q, cap); }, opts);
  }

  // Unmaps every kept buffer (those in use come back later, as usual).
  void release() {
    std::vector<std::pair<void*, size_t>> drop;
    {
      std::lock_guard<std::mutex> lock(mu_);
      drop.swap(kept_);
    }
    for (const auto& b : drop) munmap(b.first, b.second);
  }

 private:
  // A kept buffer of exactly `cap` bytes, else a fresh mapping (null if mmap fails).
  void* take(size_t cap) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 0; i < kept_.size(); ++i) {
        if (kept_[i].second == cap) {
          void* p = kept_[i].first;
          kept_.erase(kept_.begin() + static_cast<std::ptrdiff_t>(i));
          return p;
        }
      }
    }
    void* p = mmap(nullptr, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? nullptr : p;
  }

  // Keeps the buffer; when kKeep are kept already, unmaps the oldest (sizes drift over a run).
  void give_back(void* p, size_t cap) {
    std::pair<void*, size_t> drop{nullptr, 0};
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (kept_.size() >= kKeep) {
        drop = kept_.front();
        kept_.erase(kept_.begin());
      }
      kept_.emplace_back(p, cap);
    }
    if (drop.first != nullptr) munmap(drop.first, drop.second);
  }

  std::mutex mu_;
  std::vector<std::pair<void*, size_t>> kept_;
};

// The library's one pool (never destroyed: tensors holding its buffers may outlive static
// destruction at exit).
inline RecycledBuffers& recycled_buffers() {
  static auto* pool = new RecycledBuffers();
  return *pool;
}

}  // namespace cpu
}  // namespace scalevgae
