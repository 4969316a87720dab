// 8- and 16-wide float vectors (GCC vector extensions) and the polynomial exp/log1p of the float
// CPU kernels (all_pairs.cpp, decode.cpp). Compiled for whatever ISA the including function has:
// a v8f is two SSE2 halves in the baseline build and one ymm register in a target("avx2,fma")
// clone; a v16f is one zmm register in a target("avx512f") clone (all_pairs.cpp).
#pragma once

#include <cstring>

#if defined(__GNUC__) && defined(__x86_64__)
#pragma GCC diagnostic ignored "-Wpsabi"  // 32-byte vectors only cross always_inline helpers
#endif

namespace scalevgae {
namespace simd8 {

typedef float v8f __attribute__((vector_size(32)));
typedef int v8i __attribute__((vector_size(32)));
typedef float v16f __attribute__((vector_size(64)));
typedef int v16i __attribute__((vector_size(64)));

// The int vector of a float vector's width (for the exponent bits).
template <typename V>
struct IntOf;
template <>
struct IntOf<v8f> {
  using type = v8i;
};
template <>
struct IntOf<v16f> {
  using type = v16i;
};

template <typename V>
constexpr int lanes = sizeof(V) / sizeof(float);

template <typename V>
inline __attribute__((always_inline)) V vload(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename V>
inline __attribute__((always_inline)) void vstore(float* p, V v) {
  std::memcpy(p, &v, sizeof v);
}

template <typename V>
inline __attribute__((always_inline)) V vsplat(float a) {
  return V{} + a;
}

// exp(x) for x <= 0 (Cephes' expf polynomial after a Cody-Waite reduction). x is clamped at
// -80: exp(-80) ~ 2e-35 stands in for smaller values (an absolute error below 2e-35 per pair).
template <typename V>
inline __attribute__((always_inline)) V exp_nonpos(V x) {
  using VI = typename IntOf<V>::type;
  x = x < -80.0f ? vsplat<V>(-80.0f) : x;
  const V magic = vsplat<V>(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  const V n = (x * 1.44269504088896341f + magic) - magic;
  V r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  V p = vsplat<V>(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  VI bits;
  std::memcpy(&bits, &p, sizeof bits);
  bits += __builtin_convertvector(n, VI) << 23;  // times 2^n (n >= -116: no denormals)
  std::memcpy(&p, &bits, sizeof p);
  return p;
}

// log1p(e) for e in [0, 1]: e q(e), q a degree-8 Chebyshev fit of log1p(e) / e (relative error
// 2.5e-7, also for tiny e).
template <typename V>
inline __attribute__((always_inline)) V log1p_unit(V e) {
  V q = vsplat<V>(0.005186003632843494f);
  q = q * e - 0.029210267588496208f;
  q = q * e + 0.07754038274288177f;
  q = q * e - 0.13583941757678986f;
  q = q * e + 0.19055955111980438f;
  q = q * e - 0.24825648963451385f;
  q = q * e + 0.3331601023674011f;
  q = q * e - 0.4999925494194031f;
  q = q * e + 0.9999999403953552f;
  return q * e;
}

// Sum of the 8 lanes in a fixed order (a tree).
inline __attribute__((always_inline)) float hsum8(v8f v) {
  return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}

}  // namespace simd8
}  // namespace scalevgae
