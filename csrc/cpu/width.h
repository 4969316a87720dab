// The feature widths the CPU kernels compile for: rows of 16, 32, 64 or 128 features get their own
// copy (compile-time trip counts: unrolled loops, accumulators in registers), every other width
// the runtime-width loop (W = 0). One switch for propagate.cpp, decode.cpp and sample.cpp.
#pragma once

#include <cstdint>
#include <type_traits>

namespace scalevgae {
namespace cpu {

template <int W>
using Width = std::integral_constant<int, W>;

// fn(Width<F>{}) for F in {16, 32, 64, 128}, else fn(Width<0>{}); the callee reads the width as
// decltype(w)::value.
template <typename Fn>
decltype(auto) with_width(int64_t F, Fn&& fn) {
  switch (F) {
    case 16:
      return fn(Width<16>{});
    case 32:
      return fn(Width<32>{});
    case 64:
      return fn(Width<64>{});
    case 128:
      return fn(Width<128>{});
    default:
      return fn(Width<0>{});
  }
}

}  // namespace cpu
}  // namespace scalevgae
