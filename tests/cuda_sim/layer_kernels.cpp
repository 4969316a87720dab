// Tiny CUDA-style kernels for the SIMT layer's own tests (tests/test_cuda_sim_layer.py builds this
// with g++ against csrc/cuda_sim/runtime.cpp; no torch). Usage:
//   layer_kernels <case> [seed] [concurrent_blocks] [strict]
// prints "OK <details>" and exits 0, or prints "ERROR: <message>" and exits 3 when the emulator
// reports a misuse (the negative cases expect that), or "FAIL: <what>" and exits 1.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cuda_launch.h"

namespace {

constexpr unsigned kFull = 0xffffffffu;
int g_fail = 0;

void expect(bool ok, const char* what, long long i) {
  if (!ok && g_fail++ < 5) std::printf("FAIL: %s at %lld\n", what, i);
}

unsigned n_threads(dim3 grid, dim3 block) {
  return grid.x * grid.y * grid.z * block.x * block.y * block.z;
}

// kernel(args..., out) over grid x block, out one int per thread (-1 until written); returns out.
// A macro so that the emulator's messages name the kernel and this launch's line (SVG_LAUNCH).
#define LAUNCH_INTS(grid, block, kernel, ...)                                            \
  [&] {                                                                                  \
    std::vector<int> out_(n_threads(dim3(grid), dim3(block)), -1);                       \
    SVG_LAUNCH(grid, block, 0, nullptr, kernel)(__VA_ARGS__ __VA_OPT__(, ) out_.data()); \
    return out_;                                                                         \
  }()

__global__ void xor_reduce(const int* in, int* out) {
  const unsigned t = blockIdx.x * blockDim.x + threadIdx.x;
  int v = in[t];
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(kFull, v, off);
  out[t] = v;
}

__global__ void shfl_forms(int* idx, int* up, int* down, int* xw) {
  const unsigned t = threadIdx.x;
  const int v = static_cast<int>(t) * 10;
  idx[t] = __shfl_sync(kFull, v, 5, 8);       // lane 5 of each 8-lane segment
  up[t] = __shfl_up_sync(kFull, v, 3, 16);    // no wrap below the segment start
  down[t] = __shfl_down_sync(kFull, v, 3, 16);
  xw[t] = __shfl_xor_sync(kFull, v, 12, 8);   // later segment: own value; earlier: allowed
}

__global__ void votes(unsigned* ballot, int* any, int* all) {
  const unsigned lane = threadIdx.x % 32;
  ballot[threadIdx.x] = __ballot_sync(kFull, lane % 3 == 0);
  any[threadIdx.x] = __any_sync(kFull, lane == 31);
  all[threadIdx.x] = __all_sync(kFull, lane < 40);
}

// Half-warp masks: each half shuffles among itself, then __syncwarp(mask) per half.
__global__ void half_masks(int* out) {
  const unsigned lane = threadIdx.x % 32;
  const unsigned mask = lane < 16 ? 0x0000ffffu : 0xffff0000u;
  int v = static_cast<int>(lane);
  if (lane < 16) {
    v += __shfl_down_sync(mask, v, 1, 16);
  } else {
    v += __shfl_down_sync(mask, v, 1, 16);
  }
  __syncwarp(mask);
  out[threadIdx.x] = v;
}

// Block-scoped shared memory and barriers: reverse the block's values through __shared__.
__global__ void shared_reverse(const int* in, int* out) {
  __shared__ int s[256];
  const unsigned t = threadIdx.x, n = blockDim.x, base = blockIdx.x * n;
  s[t] = in[base + t];
  __syncthreads();
  const int r = s[n - 1 - t];
  __syncthreads();  // everyone has read before the block is reused
  s[t] = r * 2;
  __syncthreads();
  out[base + t] = s[t];
}

// What the atomics kernel updates, starting from these values.
struct AtomicState {
  int count = 0, mx = -1, mn = 1 << 30;
  float fsum = 0;
  double dsum = 0;
  unsigned winner = 0xffffffffu;
};

__global__ void atomics(AtomicState* s) {
  const unsigned t = blockIdx.x * blockDim.x + threadIdx.x;
  atomicAdd(&s->count, 1);
  atomicAdd(&s->fsum, 0.5f);
  atomicAdd(&s->dsum, 0.25);
  atomicMax(&s->mx, static_cast<int>(t));
  atomicMin(&s->mn, static_cast<int>(t ^ 5u));  // the minimum, 0, comes from thread 5
  atomicCAS(&s->winner, 0xffffffffu, t);
}

// Every thread of grid x 128 once through every atomic: the exact totals.
void check_atomics(unsigned grid) {
  AtomicState s;
  SVG_LAUNCH(grid, 128, 0, nullptr, atomics)(&s);
  const int n = static_cast<int>(grid * 128);
  expect(s.count == n && s.fsum == 0.5f * n && s.dsum == 0.25 * n, "atomicAdd", s.count);
  expect(s.mx == n - 1 && s.mn == 0 && s.winner < static_cast<unsigned>(n), "atomicMax/Min/CAS",
         s.mx);
}

__global__ void record_order(int* next, int* order) {
  if (threadIdx.x == 0) order[atomicAdd(next, 1)] = static_cast<int>(blockIdx.x);
}

__global__ void index_3d(int* out) {
  const unsigned bx = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned nb = blockDim.x * blockDim.y * blockDim.z;
  const unsigned tx = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  out[bx * nb + tx] = static_cast<int>(blockIdx.z * 1000000 + blockIdx.y * 10000 + blockIdx.x * 100 +
                                       threadIdx.z * 16 + threadIdx.y * 4 + threadIdx.x);
}

// ---- misuse the emulator must report ----
__global__ void lane_exits_before_shuffle(int* out) {
  const unsigned lane = threadIdx.x % 32;
  if (lane == 7) return;
  out[threadIdx.x] = __shfl_xor_sync(kFull, static_cast<int>(lane), 1);
}

__global__ void divergent_sites(int* out) {
  const unsigned lane = threadIdx.x % 32;
  int v = static_cast<int>(lane);
  if (lane < 16) {
    v = __shfl_xor_sync(kFull, v, 16);
  } else {
    v = __shfl_xor_sync(kFull, v, 16);
  }
  out[threadIdx.x] = v;
}

__global__ void exits_before_barrier(int* out) {
  if (threadIdx.x == 40) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

__global__ void reads_inactive_lane(int* out) {
  const unsigned lane = threadIdx.x % 32;
  if (lane < 16) out[lane] = __shfl_sync(0x0000ffffu, static_cast<int>(lane), 20);
}

__global__ void mask_without_self(int* out) {
  out[threadIdx.x] = __shfl_xor_sync(0x0000fffeu, 1, 1);
}

__global__ void racy_increment(int* counter) {
  *counter += 1;  // deliberately not atomic: ThreadSanitizer must report it
}

__global__ void nothing(int*) {}

template <class T>
std::vector<T> iota_vec(size_t n) {
  std::vector<T> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<T>(i);
  return v;
}

int run_case(const std::string& c) {
  if (c == "xor_reduce") {
    std::vector<int> in(128);
    for (int t = 0; t < 128; ++t) in[t] = t * 7919 % 1013;  // no symmetry a wrong partner could hide in
    const auto out = LAUNCH_INTS(2, 64, xor_reduce, in.data());
    for (int t = 0; t < 128; ++t) {
      int want = 0;
      for (int l = t / 32 * 32; l < t / 32 * 32 + 32; ++l) want += in[l];
      expect(out[t] == want, "xor butterfly sum", t);
    }
  } else if (c == "shfl_forms") {
    std::vector<int> idx(64), up(64), down(64), xw(64);
    SVG_LAUNCH(1, 64, 0, nullptr, shfl_forms)(idx.data(), up.data(), down.data(), xw.data());
    for (int t = 0; t < 64; ++t) {
      const int lane = t % 32, w = t - lane;
      expect(idx[t] == 10 * (w + lane / 8 * 8 + 5), "shfl idx width 8", t);
      const int ub = lane / 16 * 16;
      expect(up[t] == 10 * (w + (lane - 3 >= ub ? lane - 3 : lane)), "shfl up width 16", t);
      expect(down[t] == 10 * (w + (lane + 3 < ub + 16 ? lane + 3 : lane)), "shfl down width 16", t);
      const int src = lane ^ 12, xb = lane / 8 * 8;
      expect(xw[t] == 10 * (w + (src < xb + 8 ? src : lane)), "shfl xor width 8", t);
    }
  } else if (c == "votes") {
    std::vector<unsigned> ballot(64);
    std::vector<int> any(64), all(64);
    SVG_LAUNCH(1, 64, 0, nullptr, votes)(ballot.data(), any.data(), all.data());
    unsigned want = 0;
    for (unsigned l = 0; l < 32; l += 3) want |= 1u << l;
    for (int t = 0; t < 64; ++t) {
      expect(ballot[t] == want, "ballot", t);
      expect(any[t] == 1 && all[t] == 1, "any/all", t);
    }
  } else if (c == "half_masks") {
    const auto out = LAUNCH_INTS(1, 32, half_masks);
    for (int l = 0; l < 32; ++l) expect(out[l] == l + (l % 16 == 15 ? l : l + 1), "half-warp masks", l);
  } else if (c == "shared_reverse") {
    auto in = iota_vec<int>(256 * 6);
    const auto out = LAUNCH_INTS(6, 256, shared_reverse, in.data());
    for (int t = 0; t < 256 * 6; ++t) expect(out[t] == 2 * (t / 256 * 256 + 255 - t % 256), "shared", t);
  } else if (c == "atomics") {
    check_atomics(16);
  } else if (c == "order") {
    int next = 0;
    std::vector<int> order(50, -1);
    SVG_LAUNCH(50, 32, 0, nullptr, record_order)(&next, order.data());
    std::vector<int> seen(50, 0);
    for (int b : order) expect(b >= 0 && b < 50 && seen[b]++ == 0, "every block once", b);
    std::printf("ORDER");
    for (int b : order) std::printf(" %d", b);
    std::printf("\n");
  } else if (c == "index_3d") {
    const dim3 grid(3, 2, 2), block(4, 4, 2);
    const auto out = LAUNCH_INTS(grid, block, index_3d);
    for (int i = 0; i < 12 * 32; ++i) {
      const int b = i / 32, t = i % 32;
      const int want = (b / 6) * 1000000 + (b / 3 % 2) * 10000 + (b % 3) * 100 + (t / 16) * 16 + (t / 4 % 4) * 4 + t % 4;
      expect(out[i] == want, "3-D indices", i);
    }
  } else if (c == "lane_exit") {
    LAUNCH_INTS(1, 64, lane_exits_before_shuffle);
  } else if (c == "divergent_sites") {
    const auto out = LAUNCH_INTS(1, 32, divergent_sites);
    for (int l = 0; l < 32; ++l) expect(out[l] == (l ^ 16), "divergent-site xor", l);
  } else if (c == "barrier_exit") {
    LAUNCH_INTS(1, 64, exits_before_barrier);
  } else if (c == "inactive_lane") {
    LAUNCH_INTS(1, 32, reads_inactive_lane);
  } else if (c == "mask_without_self") {
    LAUNCH_INTS(1, 32, mask_without_self);
  } else if (c == "block_too_large") {
    SVG_LAUNCH(1, 1025, 0, nullptr, nothing)(nullptr);
  } else if (c == "block_z_too_large") {
    SVG_LAUNCH(1, dim3(1, 1, 65), 0, nullptr, nothing)(nullptr);
  } else if (c == "zero_grid") {
    SVG_LAUNCH(0, 32, 0, nullptr, nothing)(nullptr);
  } else if (c == "grid_overflow") {
    SVG_LAUNCH(int64_t(1) << 32, 32, 0, nullptr, nothing)(nullptr);
  } else if (c == "dynamic_smem") {
    SVG_LAUNCH(1, 32, 128, nullptr, nothing)(nullptr);
  } else if (c == "race") {
    int counter = 0;
    SVG_LAUNCH(64, 32, 0, nullptr, racy_increment)(&counter);
    std::printf("counter %d\n", counter);
  } else {
    std::printf("FAIL: unknown case %s\n", c.c_str());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::printf("usage: %s <case> [seed] [concurrent_blocks] [strict]\n", argv[0]);
    return 1;
  }
  svg_sim::Options o;
  if (argc > 2) o.seed = std::strtoull(argv[2], nullptr, 10);
  if (argc > 3) o.concurrent_blocks = std::atoi(argv[3]);
  if (argc > 4) o.strict = std::atoi(argv[4]) != 0;
  try {
    svg_sim::set_options(o);
    if (run_case(argv[1]) != 0) return 1;
  } catch (const svg_sim::SimError& e) {
    std::printf("ERROR: %s\n", e.what());
    return 3;
  }
  if (g_fail) return 1;
  std::printf("OK %s\n", argv[1]);
  return 0;
}
