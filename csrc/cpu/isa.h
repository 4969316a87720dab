// The CPU kernels' AVX2 + FMA copies: a hot loop is compiled twice, for the baseline ISA and for
// AVX2 + FMA, and the copy is picked at run time (propagate.cpp, decode.cpp, sample.cpp,
// all_pairs.cpp; all_pairs.cpp also has an AVX-512 copy). `flatten` inlines the whole loop into
// the wrapper, so all of it gets the wrapper's ISA.
#pragma once

#include <cstdlib>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define SVG_CPU_AVX2 1
#define SVG_ATTR_AVX2 __attribute__((target("avx2,fma"), flatten))
#define SVG_ATTR_AVX512 __attribute__((target("avx512f,avx512vl,avx2,fma"), flatten))
#define SVG_ATTR_BASE __attribute__((flatten))
#else
#define SVG_CPU_AVX2 0
#define SVG_ATTR_AVX2
#define SVG_ATTR_AVX512
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

// Whether this CPU runs AVX-512 (F and VL; asked once; libgcc also checks that the OS saves
// the zmm state).
inline bool has_avx512() {
#if SVG_CPU_AVX2
  static const bool has =
      has_avx2_fma() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
  return has;
#else
  return false;
#endif
}

// The widest copy to run: SCALEVGAE_CPU_NO_AVX2=1 forces the baseline copies and
// SCALEVGAE_CPU_NO_AVX512=1 the AVX2 ones (the tests run every copy; read per call, it is cheap
// next to a kernel).
enum class Isa { kBase, kAvx2, kAvx512 };
inline Isa isa() {
  if (!has_avx2_fma() || std::getenv("SCALEVGAE_CPU_NO_AVX2") != nullptr) return Isa::kBase;
  if (!has_avx512() || std::getenv("SCALEVGAE_CPU_NO_AVX512") != nullptr) return Isa::kAvx2;
  return Isa::kAvx512;
}

}  // namespace cpu
}  // namespace scalevgae
