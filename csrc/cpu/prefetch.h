// Software prefetch of the CPU kernels (propagate.cpp, decode.cpp), whose random row reads
// bound them.
#pragma once

namespace scalevgae {
namespace cpu {

// Software prefetch into L1 (kL1) or L2. __builtin_prefetch has no side effects, so GCC deletes
// a loop of unknown trip count made only of prefetches (C++ loops are assumed finite), and GCC
// 12 was seen to drop every prefetch of a function when one was conditional (`if (..) pf(..)`).
// kAsm: inline asm, which is kept (used for runtime-width loops); it is not the default as it
// kept GCC from vectorizing the 16-wide accumulation of propagate.cpp around it (F=16: ~25% slower).
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

}  // namespace cpu
}  // namespace scalevgae
