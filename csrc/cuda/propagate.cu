// CUDA kernel of scalevgae::gcn_spmm (fused normalized propagation), see csrc/ops.cpp.
//
// Load balance: one warp per equal chunk of the merge path of (row ends, edges)
// (propagate_math.h; a first kernel finds the chunk boundaries), so a hub row with 10^5
// neighbours is spread over many warps; rows cut by chunk boundaries leave raw partial sums that
// a last kernel adds in chunk order (no atomics, deterministic). Inside a warp, lanes are split
// into groups of S lanes that cover the feature dimension with V-wide vector loads (16 bytes:
// float4, 2 doubles, 8 halves); the P = 32 / S groups take different edges of the row and are
// reduced with shuffles. Accumulation in float (double for double). Compiled in CI but not run
// on a GPU there.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cstring>

#include "checks.h"
#include "cuda_launch.h"
#include "library_ns.h"
#include "propagate_host.h"
#include "propagate_math.h"

namespace scalevgae {
namespace {

using prop::ChunkInfo;

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 8;
constexpr int kUnroll = 4;  // edges per group whose rows are loaded before accumulating
// Resident blocks per SM the chunks kernel is compiled for (__launch_bounds__): 3 caps it at 80
// registers with no spill for any width, 4 spills (README "Registers"). -DSVG_SPMM_MIN_BLOCKS=N
// to compare; N=0: no minimum, no cap.
#ifndef SVG_SPMM_MIN_BLOCKS
#define SVG_SPMM_MIN_BLOCKS 3
#endif
#if SVG_SPMM_MIN_BLOCKS > 0
#define SVG_SPMM_BOUNDS __launch_bounds__(kWarp* kWarpsPerBlock, SVG_SPMM_MIN_BLOCKS)
#else
#define SVG_SPMM_BOUNDS __launch_bounds__(kWarp* kWarpsPerBlock)
#endif

// The shared arguments (propagate_host.h) and the merge-path work split.
template <typename scalar_t, typename acc_t, typename index_t>
struct Problem : prop::SpmmArgs<scalar_t, acc_t, index_t> {
  acc_t* head_buf;    // [n_chunks, F]
  acc_t* tail_buf;    // [n_chunks, F]
  int64_t* head_rows; // [n_chunks]
  int64_t* tail_rows; // [n_chunks]
  int64_t* bound_row;  // [n_chunks + 1] merge-path point where each chunk starts
  int64_t* bound_edge; // [n_chunks + 1]
  int64_t chunk_work, n_chunks;
  int group_size;     // S lanes per edge (a power of two <= 32)
};

// V features at p converted to acc_t; one 16-byte load when V elements are 16 bytes.
template <int V, typename acc_t, typename scalar_t>
__device__ __forceinline__ void load_vec(acc_t* out, const scalar_t* p) {
  if constexpr (V * sizeof(scalar_t) == 16) {
    const uint4 raw = __ldg(reinterpret_cast<const uint4*>(p));
    scalar_t s[V];
    memcpy(s, &raw, 16);
#pragma unroll
    for (int j = 0; j < V; ++j) out[j] = prop::to_acc<acc_t>(s[j]);
  } else {
#pragma unroll
    for (int j = 0; j < V; ++j) out[j] = prop::to_acc<acc_t>(p[j]);
  }
}

// Sum over edges [a, b) of one feature tile of a row, by all groups of the warp, reduced to
// every lane. Group g takes edges a + g, a + g + P, ... (P groups), kUnroll at a time.
template <int V, typename scalar_t, typename acc_t, typename index_t>
__device__ __forceinline__ void tile_sum(acc_t* acc, const Problem<scalar_t, acc_t, index_t>& p,
                                         int64_t a, int64_t b, int64_t f0, bool active, int group,
                                         int n_groups,
                                         int64_t self_row) {
#pragma unroll
  for (int j = 0; j < V; ++j) acc[j] = acc_t(0);
  if (self_row >= 0 && group == 0 && active) {
    acc_t v[V];
    load_vec<V>(v, p.x + self_row * p.F + f0);
    prop::axpy<V>(acc, prop::src_weight(p.src_scale, self_row), v);
  }
  for (int64_t e = a + group; e < b; e += static_cast<int64_t>(n_groups) * kUnroll) {
    acc_t v[kUnroll][V];
    acc_t w[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t ee = e + static_cast<int64_t>(u) * n_groups;
      w[u] = acc_t(0);
#pragma unroll
      for (int j = 0; j < V; ++j) v[u][j] = acc_t(0);
      if (ee < b) {
        const int64_t c = static_cast<int64_t>(__ldg(p.col + ee));
        w[u] = prop::src_weight(p.src_scale, c);
        if (active) load_vec<V>(v[u], p.x + c * p.F + f0);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) prop::axpy<V>(acc, w[u], v[u]);
  }
  // Tree reduction over the groups (lanes that differ in the group bits).
  for (int off = kWarp / 2; off >= p.group_size; off >>= 1) {
#pragma unroll
    for (int j = 0; j < V; ++j) acc[j] += __shfl_xor_sync(0xffffffffu, acc[j], off);
  }
}

enum class Dest { kOutput, kHead, kTail };

// One row (or the part of it inside this chunk) over every feature tile.
template <int V, typename scalar_t, typename acc_t, typename index_t>
__device__ __forceinline__ void process_row(const Problem<scalar_t, acc_t, index_t>& p, int64_t k,
                                            int64_t i,
                                            int64_t a, int64_t b, Dest dest, int lane) {
  const int S = p.group_size;
  const int n_groups = kWarp / S;
  const int group = lane / S;
  const int gl = lane % S;
  const int64_t tile = static_cast<int64_t>(S) * V;
  const bool self = dest == Dest::kOutput && prop::self_in_sum(p.self_loops, p.self_scale, i, p.n_src);
  const int64_t self_row = self ? i : -1;
  const bool post_self =
      dest == Dest::kOutput && prop::self_after_scale(p.self_loops, p.self_scale, i, p.n_src);
  const acc_t w_self = post_self ? p.self_scale[i] : acc_t(0);
  for (int64_t t0 = 0; t0 < p.F; t0 += tile) {
    const int64_t f0 = t0 + static_cast<int64_t>(gl) * V;
    const bool active = f0 < p.F;
    acc_t acc[V];
    tile_sum<V>(acc, p, a, b, f0, active, group, n_groups, self_row);
    if (group != 0 || !active) continue;
    if (dest == Dest::kOutput && post_self) {
      scalar_t* yr = p.y + i * p.F;
      acc_t xi[V];
      load_vec<V>(xi, p.x + i * p.F + f0);
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const acc_t v = prop::finish_self(acc[j], p.dst_scale, i, w_self, xi[j], p.bias, f0 + j, p.relu);
        yr[f0 + j] = static_cast<scalar_t>(v);
      }
    } else if (dest == Dest::kOutput) {
      scalar_t* yr = p.y + i * p.F;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const acc_t v = prop::finish(acc[j], p.dst_scale, i, p.bias, f0 + j, p.relu);
        yr[f0 + j] = static_cast<scalar_t>(v);
      }
    } else {
      acc_t* buf = (dest == Dest::kHead ? p.head_buf : p.tail_buf) + k * p.F;
#pragma unroll
      for (int j = 0; j < V; ++j) buf[f0 + j] = acc[j];
    }
  }
}

// Merge-path point of every chunk boundary, one thread each: the binary searches run once and
// in parallel instead of serially at the start of every warp.
template <typename scalar_t, typename acc_t, typename index_t>
__global__ void gcn_spmm_partition_kernel(const Problem<scalar_t, acc_t, index_t> p) {
  const int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k > p.n_chunks) return;
  const int64_t d = prop::chunk_diagonal(k, p.chunk_work, p.n_rows + p.nnz);
  const prop::PathCoord c = prop::merge_path_search(d, p.rowptr, p.n_rows, p.nnz);
  p.bound_row[k] = c.row;
  p.bound_edge[k] = c.edge;
}

template <int V, typename scalar_t, typename acc_t, typename index_t>
__global__ void SVG_SPMM_BOUNDS gcn_spmm_chunks_kernel(const Problem<scalar_t, acc_t, index_t> p) {
  const int64_t k = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (k >= p.n_chunks) return;  // whole warps exit together: the shuffles stay full-warp
  const prop::PathCoord start{p.bound_row[k], p.bound_edge[k]};
  const prop::PathCoord stop{p.bound_row[k + 1], p.bound_edge[k + 1]};
  const ChunkInfo c = prop::chunk_between(start, stop, p.rowptr, p.n_rows);
  if (lane == 0) {
    p.head_rows[k] = c.head_row;
    p.tail_rows[k] = c.tail_row;
  }
  for (int64_t i = c.row_begin; i < c.row_end; ++i) {
    const int64_t a = prop::row_first_edge(p.rowptr, i, c.edge_begin);
    const int64_t b = static_cast<int64_t>(p.rowptr[i + 1]);
    process_row<V>(p, k, i, a, b, i == c.head_row ? Dest::kHead : Dest::kOutput, lane);
  }
  if (c.tail_row >= 0) {
    const int64_t a = prop::row_first_edge(p.rowptr, c.tail_row, c.edge_begin);
    process_row<V>(p, k, c.tail_row, a, c.edge_end, Dest::kTail, lane);
  }
}

// Rows cut by chunk boundaries: tails in chunk order, the head, the self loop, the epilogue.
// One warp per chunk that owns such a row, lanes over features.
template <typename scalar_t, typename acc_t, typename index_t>
__global__ void __launch_bounds__(kWarp* kWarpsPerBlock)
    gcn_spmm_fixup_kernel(const Problem<scalar_t, acc_t, index_t> p) {
  const int64_t k = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (k >= p.n_chunks) return;
  const int64_t r = p.head_rows[k];
  if (r < 0) return;
  const int64_t j0 = prop::first_tail_chunk(k, r, p.tail_rows);
  const bool self = prop::self_in_sum(p.self_loops, p.self_scale, r, p.n_src);
  const bool post_self = prop::self_after_scale(p.self_loops, p.self_scale, r, p.n_src);
  const acc_t w_self = prop::src_weight(p.src_scale, r);
  const acc_t w_post = post_self ? p.self_scale[r] : acc_t(0);
  for (int64_t f = lane; f < p.F; f += kWarp) {
    acc_t v = acc_t(0);
    for (int64_t j = j0; j < k; ++j) v += p.tail_buf[j * p.F + f];
    v += p.head_buf[k * p.F + f];
    if (self) v += w_self * prop::to_acc<acc_t>(p.x[r * p.F + f]);
    const acc_t out =
        post_self ? prop::finish_self(v, p.dst_scale, r, w_post,
                                      prop::to_acc<acc_t>(p.x[r * p.F + f]), p.bias, f, p.relu)
                  : prop::finish(v, p.dst_scale, r, p.bias, f, p.relu);
    p.y[r * p.F + f] = static_cast<scalar_t>(out);
  }
}

int next_pow2(int64_t v) {
  int s = 1;
  while (s < v && s < kWarp) s <<= 1;
  return s;
}

template <int V, typename scalar_t, typename acc_t, typename index_t>
void launch(Problem<scalar_t, acc_t, index_t> p, cudaStream_t stream) {
  p.group_size = next_pow2((p.F + V - 1) / V);
  const int64_t blocks = (p.n_chunks + kWarpsPerBlock - 1) / kWarpsPerBlock;
  TORCH_CHECK(blocks <= 0x7fffffffLL, "gcn_spmm: too many chunks");
  const int64_t part_blocks = (p.n_chunks + 1 + 255) / 256;
  SVG_LAUNCH(static_cast<unsigned>(part_blocks), 256, 0, stream, gcn_spmm_partition_kernel)(p);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const unsigned grid = static_cast<unsigned>(blocks);
  SVG_LAUNCH(grid, kWarp * kWarpsPerBlock, 0, stream, gcn_spmm_chunks_kernel<V>)(p);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  SVG_LAUNCH(static_cast<unsigned>(blocks), kWarp * kWarpsPerBlock, 0, stream, gcn_spmm_fixup_kernel)(p);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// Path work per warp: enough chunks to fill the GPU several times over, but the partial-sum
// buffers (2 * n_chunks * F accumulators) bounded to ~16 MB. Depends only on the problem size,
// so results are reproducible across GPUs.
int64_t chunk_work_for(int64_t work, int64_t F, int64_t acc_bytes) {
  const int64_t per_chunk = std::max<int64_t>(2 * F * acc_bytes, 1);
  const int64_t max_chunks = std::max<int64_t>(2048, (int64_t(1) << 24) / per_chunk);
  return std::max<int64_t>(64, (work + max_chunks - 1) / max_chunks);
}

at::Tensor gcn_spmm_cuda(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& x_in,
                         const c10::optional<at::Tensor>& dst_scale,
                         const c10::optional<at::Tensor>& src_scale,
                         bool self_loops, const c10::optional<at::Tensor>& bias, bool relu,
                         const c10::optional<at::Tensor>& /*t_rowptr*/,
                         const c10::optional<at::Tensor>& /*t_col*/,
                         const c10::optional<at::Tensor>& self_scale) {
  check_gcn_spmm_args(rowptr, col, x_in, dst_scale, src_scale, bias, self_loops, self_scale);
  const int64_t n_rows = rowptr.numel() - 1;
  const at::ScalarType acc = acc_dtype(x_in.scalar_type());

  const c10::cuda::CUDAGuard device_guard(x_in.device());
  const prop::SpmmOperands o =
      prop::spmm_operands(rowptr, col, x_in, dst_scale, src_scale, bias, self_scale);
  if (o.empty()) return o.y;
  const int64_t F = o.x.size(1);
  const int64_t nnz = o.col.numel();
  const int64_t work = n_rows + nnz;
  const int64_t acc_bytes = acc == at::kDouble ? 8 : 4;
  const int64_t chunk_work = chunk_work_for(work, F, acc_bytes);
  const int64_t n_chunks = prop::num_chunks(work, chunk_work);
  at::Tensor bufs = at::empty({2, n_chunks, F}, o.x.options().dtype(acc));
  at::Tensor rows = at::empty({2, n_chunks}, o.x.options().dtype(at::kLong));
  at::Tensor bounds = at::empty({2, n_chunks + 1}, o.x.options().dtype(at::kLong));
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();

  const auto dtype = o.x.scalar_type();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "gcn_spmm_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    AT_DISPATCH_INDEX_TYPES(o.rowptr.scalar_type(), "gcn_spmm_cuda_index", [&] {
      Problem<scalar_t, acc_t, index_t> p;
      prop::fill_spmm_args(p, o, self_loops, relu);
      p.head_buf = bufs[0].data_ptr<acc_t>();
      p.tail_buf = bufs[1].data_ptr<acc_t>();
      p.head_rows = rows[0].data_ptr<int64_t>();
      p.tail_rows = rows[1].data_ptr<int64_t>();
      p.bound_row = bounds[0].data_ptr<int64_t>();
      p.bound_edge = bounds[1].data_ptr<int64_t>();
      p.chunk_work = chunk_work;
      p.n_chunks = n_chunks;
      p.group_size = 1;
      constexpr int kVec = static_cast<int>(16 / sizeof(scalar_t));
      const bool aligned = (reinterpret_cast<uintptr_t>(p.x) % 16 == 0) && (F % kVec == 0) &&
                           (reinterpret_cast<uintptr_t>(p.y) % 16 == 0);
      if (aligned) {
        launch<kVec>(p, stream);
      } else {
        launch<1>(p, stream);
      }
    });
  });
  return o.y;
}

}  // namespace

SVG_LIBRARY_IMPL(SVG_NS, SVG_CUDA_KEY, m) { m.impl("gcn_spmm", &gcn_spmm_cuda); }

}  // namespace scalevgae
