// The CPU kernels' AVX2 + FMA copies: a hot loop is compiled twice, for the baseline ISA and for
// AVX2 + FMA, and the copy is picked at run time (propagate.cpp, decode.cpp, all_pairs.cpp).
// `flatten` inlines the whole loop into the wrapper, so all of it gets the wrapper's ISA.
#pragma once

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define SVG_CPU_AVX2 1
#define SVG_ATTR_AVX2 __attribute__((target("avx2,fma"), flatten))
#define SVG_ATTR_BASE __attribute__((flatten))
#else
#define SVG_CPU_AVX2 0
#define SVG_ATTR_AVX2
#define SVG_ATTR_BASE
#endif

namespace scalevgae {
namespace cpu {

// Whether this CPU runs the AVX2 + FMA copies (asked once).
inline bool has_avx2_fma() {
#if SVG_CPU_AVX2
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
#else
  return false;
#endif
}

}  // namespace cpu
}  // namespace scalevgae
