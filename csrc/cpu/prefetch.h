// Software prefetch of the CPU kernels (propagate.cpp, decode.cpp, sample.cpp), whose random row
// reads bound them.
#pragma once

#include <cstdint>

namespace scalevgae {
namespace cpu {

// Software prefetch into L1 (kL1) or L2. __builtin_prefetch has no side effects, so GCC deletes
// a loop of unknown trip count made only of prefetches (C++ loops are assumed finite), and GCC
// 12 was seen to drop every prefetch of a function when one was conditional (`if (..) pf(..)`).
// kAsm: inline asm, which is kept (used for runtime-width loops); it is not the default as it
// kept GCC from vectorizing the 16-wide accumulation of propagate.cpp around it (F=16: ~25%
// slower).
template <bool kL1, bool kAsm>
inline void prefetch(const void* addr) {
#if defined(__GNUC__) && defined(__x86_64__)
  if constexpr (kAsm) {
    if constexpr (kL1) {
      asm volatile("prefetcht0 (%0)" : : "r"(addr));
    } else {
      asm volatile("prefetcht1 (%0)" : : "r"(addr));
    }
    return;
  }
#endif
  __builtin_prefetch(addr, 0, kL1 ? 3 : 2);
}

// True when every row of a matrix at `base` with rows of `row_bytes` starts on a 64-byte line.
inline bool rows_on_lines(const void* base, int64_t row_bytes) {
  return reinterpret_cast<uintptr_t>(base) % 64 == 0 && row_bytes % 64 == 0;
}

// Bytes to prefetch from the start of a `bytes` span so that every line it touches is covered:
// one line more when the span may not start on a line. Prefetching lines a row does not use
// costs: these kernels are bound by the lines in flight.
inline int64_t prefetch_span(int64_t bytes, bool on_lines) { return on_lines ? bytes : bytes + 63; }

}  // namespace cpu
}  // namespace scalevgae
