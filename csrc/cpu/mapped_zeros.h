// Zero-filled CPU tensors of kMinBytes and more taken straight from the kernel: a fresh anonymous
// mapping reads as zeros already, so a kernel that accumulates into a big output (decode.cpp's
// owner scan) skips a zero-filling pass of its own over it. Smaller ones: at::zeros.
//
// Why: glibc serves such sizes with a fresh mapping anyway (its mmap threshold is at most 32 MB),
// which the kernel zeroes page by page on first touch; filling it with zeros on top of that was
// a second pass over the whole output (256 MB for dz at n = 10^6, F = 64; without it edge_grad went
// from 81.5 to 72.4 ms and the decoder's forward + backward from 108 to 88 ms, medians of seven
// alternated runs, E = 10^6, 2 threads). The mapping is 2 MB
// aligned and, as torch's allocator does under THP_MEM_ALLOC_ENABLE=1 (which `import scalevgae`
// sets unless the user chose otherwise), advised to transparent huge pages, so that random row
// updates over it miss the TLB as rarely as over torch's own allocations.
#pragma once

#include <ATen/ATen.h>
#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace scalevgae {
namespace cpu {

// A contiguous tensor of `sizes` with `opts` (CPU), every element zero.
inline at::Tensor mapped_zeros(at::IntArrayRef sizes, const at::TensorOptions& opts) {
  constexpr size_t kMinBytes = size_t(32) << 20;
  constexpr size_t kHuge = size_t(2) << 20;
  size_t numel = 1;
  for (int64_t s : sizes) numel *= static_cast<size_t>(s);
  const size_t bytes = numel * opts.dtype().itemsize();
  if (bytes < kMinBytes) return at::zeros(sizes, opts);
  const size_t len = (bytes + kHuge - 1) / kHuge * kHuge;
  // One huge page more than needed, then the unaligned head and the tail are given back.
  void* raw =
      mmap(nullptr, len + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return at::zeros(sizes, opts);
  const uintptr_t r = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t a = (r + kHuge - 1) / kHuge * kHuge;
  if (a > r) munmap(raw, a - r);
  if (r + len + kHuge > a + len)
    munmap(reinterpret_cast<void*>(a + len), r + len + kHuge - (a + len));
  void* p = reinterpret_cast<void*>(a);
  const char* thp = std::getenv("THP_MEM_ALLOC_ENABLE");
  if (thp != nullptr && std::strcmp(thp, "1") == 0) madvise(p, len, MADV_HUGEPAGE);
  return at::from_blob(p, sizes, [len](void* q) { munmap(q, len); }, opts);
}

}  // namespace cpu
}  // namespace scalevgae
