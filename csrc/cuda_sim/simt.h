// CPU SIMT execution layer: the CUDA dialect the kernels of csrc/cuda/ use, compiled by g++
// (C++20) so the same .cu sources run on the CPU as scalevgae._C_cuda_sim (CI has no GPU).
//
// Execution model (runtime in csrc/cuda_sim/runtime.cpp):
//  * every CUDA thread of a block is a fiber (ucontext) on one OS thread; a fiber runs until it
//    reaches a collective (warp shuffle/vote, __syncwarp, __syncthreads) or returns, so
//    scheduling is deterministic for a given block order;
//  * warp collectives meet in a per-warp rendezvous: every lane named in the mask must arrive
//    with the same mask and op (and, in strict mode, from the same call site); a lane of the
//    mask that exited, waits at __syncthreads, or names a lane that is not in the mask or does
//    not exist is reported as an error naming kernel, block, lanes and source lines. Deadlock
//    detection is exact: when no fiber can run and a collective cannot complete, the launch
//    fails at once (no timer needed: fibers only stop at collectives);
//  * __shared__ is block-scoped (static thread_local: a block's fibers share one OS thread,
//    concurrent blocks run on different ones); __syncthreads is a block-wide rendezvous;
//  * blocks run in a seeded pseudo-random order, `concurrent_blocks` at a time on that many OS
//    threads (so ThreadSanitizer sees races between blocks), atomics via std::atomic_ref;
//  * launch configurations are checked like the driver does (block <= 1024 threads, grid
//    limits, no dynamic shared memory) and raise svg_sim::SimError.
// Options: scalevgae._C_cuda_sim.set_sim_options(seed, concurrent_blocks, strict) (defaults
// 0, 1, True), read at each launch; get_sim_options() returns them.
// Not emulated: dynamic (extern) shared memory, cooperative groups, clusters, texture memory,
// memory fences beyond what std::atomic_ref gives, intra-block races under TSan (a block's
// fibers are one TSan thread; races are seen between concurrent blocks).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <source_location>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

// GCC flags constexpr locals used only as template arguments of a kernel inside SVG_LAUNCH's
// lambda as "set but not used" (a false positive, hundreds of lines per build).
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"

// ---- CUDA keywords ----
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __constant__
#define __shared__ static thread_local

// ---- built-in types ----
struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};

#define SVG_SIM_VEC2(name, T, A)   \
  struct alignas(A) name {         \
    T x, y;                        \
  };                               \
  inline name make_##name(T a, T b) { return name{a, b}; }
#define SVG_SIM_VEC4(name, T, A)       \
  struct alignas(A) name {             \
    T x, y, z, w;                      \
  };                                   \
  inline name make_##name(T a, T b, T c, T d) { return name{a, b, c, d}; }
SVG_SIM_VEC2(int2, int, 8)
SVG_SIM_VEC2(uint2, unsigned, 8)
SVG_SIM_VEC2(float2, float, 8)
SVG_SIM_VEC2(double2, double, 16)
SVG_SIM_VEC2(longlong2, long long, 16)
SVG_SIM_VEC2(ulonglong2, unsigned long long, 16)
SVG_SIM_VEC4(int4, int, 16)
SVG_SIM_VEC4(uint4, unsigned, 16)
SVG_SIM_VEC4(float4, float, 16)
SVG_SIM_VEC4(char4, signed char, 4)
SVG_SIM_VEC4(uchar4, unsigned char, 4)
#undef SVG_SIM_VEC2
#undef SVG_SIM_VEC4

typedef struct CUstream_st* cudaStream_t;
enum cudaError_t { cudaSuccess = 0 };
constexpr int warpSize = 32;

// Index registers of the running CUDA thread (set by the scheduler before it resumes a fiber).
extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;

namespace svg_sim {

// A misuse the emulator detected (bad launch, collective mismatch, deadlock); torch ops turn it
// into a Python RuntimeError.
struct SimError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Options {
  uint64_t seed = 0;           // block-order shuffle seed
  int concurrent_blocks = 1;   // OS threads running blocks at once
  bool strict = true;          // collectives of one rendezvous must come from the same call site
};
Options get_options();
void set_options(const Options& o);

enum class Op : int { kShflIdx, kShflUp, kShflDown, kShflXor, kBallot, kSyncWarp, kSyncThreads };

// What one lane brings to a collective, and what it gets back.
struct Request {
  Op op;
  unsigned mask;
  int arg;    // source lane / delta / lane mask of a shuffle
  int width;  // shuffle segment width
  int pred;   // ballot predicate
  unsigned char in[16];
  const char* file;
  unsigned line, column;
};
struct Reply {
  unsigned char out[16];
  unsigned ballot;
};
// Blocks the calling CUDA thread until its rendezvous completes (throws nothing: errors end
// the launch from the scheduler).
Reply collective(const Request& r);

template <class T>
inline T shfl(Op op, unsigned mask, T v, int arg, int width, const std::source_location& loc) {
  static_assert(sizeof(T) <= 16 && std::is_trivially_copyable_v<T>, "shuffle of a type > 16 bytes");
  Request r{op, mask, arg, width, 0, {}, loc.file_name(), loc.line(), loc.column()};
  std::memcpy(r.in, &v, sizeof(T));
  const Reply rep = collective(r);
  T out;
  std::memcpy(&out, rep.out, sizeof(T));
  return out;
}

inline unsigned vote(Op op, unsigned mask, int pred, const std::source_location& loc) {
  Request r{op, mask, 0, 32, pred != 0, {}, loc.file_name(), loc.line(), loc.column()};
  return collective(r).ballot;
}

// ---- launches ----
struct Config {
  dim3 grid, block;
  const char* kernel;
  const char* file;
  int line;
};
using Body = void (*)(void*);
// Runs body(ctx) once per CUDA thread of the grid (see the execution model above).
void run(const Config& cfg, Body body, void* ctx);
// Checked conversion of a launch dimension (an integer or a dim3).
dim3 launch_dim(long long v, const char* what, const char* kernel);
inline dim3 launch_dim(const dim3& v, const char*, const char*) { return v; }

template <class Fn>
struct Bound {
  Config cfg;
  Fn fn;
  template <class... A>
  void operator()(A... args) const {
    const std::tuple<A...> params(args...);  // the kernel's parameter space, copied per thread
    struct Ctx {
      const Fn* fn;
      const std::tuple<A...>* params;
    } ctx{&fn, &params};
    run(cfg, [](void* c) {
      auto* x = static_cast<Ctx*>(c);
      std::apply(*x->fn, *x->params);
    }, &ctx);
  }
};

class Launch {
 public:
  template <class G, class B>
  Launch(const G& grid, const B& block, size_t smem, cudaStream_t, const char* kernel, const char* file,
         int line)
      : cfg_{launch_dim(grid, "grid", kernel), launch_dim(block, "block", kernel), kernel, file, line} {
    if (smem != 0)
      throw SimError(std::string("cuda_sim: ") + kernel + ": dynamic shared memory is not emulated");
  }
  template <class Fn>
  Bound<Fn> bind(Fn fn) const {
    return Bound<Fn>{cfg_, fn};
  }

 private:
  Config cfg_;
};

}  // namespace svg_sim

// ---- device built-ins ----
template <class T>
inline T __ldg(const T* p) {
  return *p;
}

template <class T>
inline T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32,
                     std::source_location loc = std::source_location::current()) {
  return svg_sim::shfl(svg_sim::Op::kShflIdx, mask, v, src_lane, width, loc);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32,
                        std::source_location loc = std::source_location::current()) {
  return svg_sim::shfl(svg_sim::Op::kShflUp, mask, v, static_cast<int>(delta), width, loc);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32,
                          std::source_location loc = std::source_location::current()) {
  return svg_sim::shfl(svg_sim::Op::kShflDown, mask, v, static_cast<int>(delta), width, loc);
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32,
                         std::source_location loc = std::source_location::current()) {
  return svg_sim::shfl(svg_sim::Op::kShflXor, mask, v, lane_mask, width, loc);
}
inline unsigned __ballot_sync(unsigned mask, int pred, std::source_location loc = std::source_location::current()) {
  return svg_sim::vote(svg_sim::Op::kBallot, mask, pred, loc);
}
inline int __any_sync(unsigned mask, int pred, std::source_location loc = std::source_location::current()) {
  return svg_sim::vote(svg_sim::Op::kBallot, mask, pred, loc) != 0;
}
inline int __all_sync(unsigned mask, int pred, std::source_location loc = std::source_location::current()) {
  return svg_sim::vote(svg_sim::Op::kBallot, mask, pred, loc) == mask;
}
inline void __syncwarp(unsigned mask = 0xffffffffu, std::source_location loc = std::source_location::current()) {
  svg_sim::vote(svg_sim::Op::kSyncWarp, mask, 0, loc);
}
inline void __syncthreads(std::source_location loc = std::source_location::current()) {
  svg_sim::vote(svg_sim::Op::kSyncThreads, 0, 0, loc);
}

// Atomics (relaxed, like CUDA's): one overload set for every arithmetic type.
template <class T>
inline T atomicAdd(T* p, std::type_identity_t<T> v) {
  return std::atomic_ref<T>(*p).fetch_add(v, std::memory_order_relaxed);
}
template <class T>
inline T atomicSub(T* p, std::type_identity_t<T> v) {
  return std::atomic_ref<T>(*p).fetch_sub(v, std::memory_order_relaxed);
}
template <class T>
inline T atomicExch(T* p, std::type_identity_t<T> v) {
  return std::atomic_ref<T>(*p).exchange(v, std::memory_order_relaxed);
}
template <class T>
inline T atomicCAS(T* p, std::type_identity_t<T> expected, std::type_identity_t<T> desired) {
  std::atomic_ref<T>(*p).compare_exchange_strong(expected, desired, std::memory_order_relaxed);
  return expected;  // the old value either way
}
namespace svg_sim {
// The atomics std::atomic_ref has no member for (max, min): a CAS loop that stores v while
// replaces(old, v) holds; returns the old value.
template <class T, class Replaces>
inline T cas_store_if(T* p, T v, Replaces replaces) {
  std::atomic_ref<T> a(*p);
  T old = a.load(std::memory_order_relaxed);
  while (replaces(old, v) && !a.compare_exchange_weak(old, v, std::memory_order_relaxed)) {
  }
  return old;
}
}  // namespace svg_sim
template <class T>
inline T atomicMax(T* p, std::type_identity_t<T> v) {
  return svg_sim::cas_store_if(p, v, [](T old, T x) { return old < x; });
}
template <class T>
inline T atomicMin(T* p, std::type_identity_t<T> v) {
  return svg_sim::cas_store_if(p, v, [](T old, T x) { return x < old; });
}
inline int __popc(unsigned v) { return __builtin_popcount(v); }
inline int __popcll(unsigned long long v) { return __builtin_popcountll(v); }
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
