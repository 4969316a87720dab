// CUDA per-row neighbor sampling with the counter-based RNG of sample_math.h, so it returns exactly
// what the CPU kernel and the reference return. Light rows take one thread each; heavy rows (a
// hub with fanout -1 or a large fanout: more than kWarpRowWork entries to draw, copy or rank)
// take a whole warp, so one hub does not serialise its block. The relabel step runs on the GPU
// too, through sort-based torch ops (scalevgae/sampling/neighbor.py). sample_aggregate samples
// with the same kernels and sums the sample one warp per row.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>

#include "checks.h"
#include "cuda_launch.h"
#include "library_ns.h"
#include "sample_math.h"

namespace scalevgae {
namespace {

constexpr int kThreads = 256;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr int64_t kWarpRowWork = 128;

// Whether a row of degree d is sampled by a warp (sample_row's paths: take all, with
// replacement, Floyd for k <= kFloydMaxK, k smallest ranks): every path but Floyd's, whose cost
// does not depend on d, once it has more than kWarpRowWork entries to produce or rank.
__device__ __forceinline__ bool row_on_warp(int64_t d, int64_t fanout, bool replace) {
  if (fanout < 0 || (!replace && fanout >= d)) return d > kWarpRowWork;
  if (replace) return d > 0 && fanout > kWarpRowWork;
  return fanout > sample::kFloydMaxK && d > kWarpRowWork;
}

template <typename idx_t>
__global__ void count_rows_kernel(const idx_t* __restrict__ rp, const int64_t* __restrict__ nodes, int64_t n,
                                  int64_t fanout, bool replace, int64_t* __restrict__ cnt) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t v = nodes[i];
    cnt[i] = sample::row_count(static_cast<int64_t>(rp[v + 1] - rp[v]), fanout, replace);
  }
}

template <typename idx_t>
__global__ void fill_rows_kernel(const idx_t* __restrict__ rp, const idx_t* __restrict__ cl,
                                 const int64_t* __restrict__ nodes, int64_t n, int64_t fanout, bool replace,
                                 uint64_t seed, int64_t hop, const int64_t* __restrict__ out_rp,
                                 int64_t* __restrict__ out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t v = nodes[i];
    int64_t base = static_cast<int64_t>(rp[v]);
    int64_t d = static_cast<int64_t>(rp[v + 1]) - base;
    int64_t* o = out + out_rp[i];
    int64_t cnt = out_rp[i + 1] - out_rp[i];
    if (row_on_warp(d, fanout, replace)) continue;  // fill_warp_rows_kernel
    sample::sample_row(sample::stream_key(seed, hop, v), d, fanout, replace, o);
    for (int64_t j = 0; j < cnt; ++j) o[j] = static_cast<int64_t>(cl[base + o[j]]);
  }
}

// The heavy rows, one warp each (warp w takes rows w, w + n_warps, ...; the test is uniform
// across the warp). Same result as sample_row + the column map: take-all and with-replacement
// draws are independent per entry; the k smallest ranks are found by a warp-wide binary search
// for the k-th smallest rank R, then the offsets with rank <= R are compacted in ascending order
// (sample_row returns them sorted) with a ballot per 32 offsets.
template <typename idx_t>
__global__ void fill_warp_rows_kernel(const idx_t* __restrict__ rp, const idx_t* __restrict__ cl,
                                      const int64_t* __restrict__ nodes, int64_t n, int64_t fanout, bool replace,
                                      uint64_t seed, int64_t hop, const int64_t* __restrict__ out_rp,
                                      int64_t* __restrict__ out) {
  const int lane = threadIdx.x % 32;
  const int64_t n_warps = static_cast<int64_t>(gridDim.x) * blockDim.x / 32;
  for (int64_t i = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32; i < n; i += n_warps) {
    const int64_t v = nodes[i];
    const int64_t base = static_cast<int64_t>(rp[v]);
    const int64_t d = static_cast<int64_t>(rp[v + 1]) - base;
    if (!row_on_warp(d, fanout, replace)) continue;
    int64_t* o = out + out_rp[i];
    if (fanout < 0 || (!replace && fanout >= d)) {
      for (int64_t j = lane; j < d; j += 32) o[j] = static_cast<int64_t>(cl[base + j]);
      continue;
    }
    const uint32_t key = sample::stream_key(seed, hop, v);
    if (replace) {
      for (int64_t t = lane; t < fanout; t += 32) {
        const uint64_t e = (static_cast<uint64_t>(sample::draw(key, t)) * static_cast<uint64_t>(d)) >> 32;
        o[t] = static_cast<int64_t>(cl[base + static_cast<int64_t>(e)]);
      }
      continue;
    }
    // Smallest R with #{e : rank(e) <= R} >= k (ranks are distinct, so exactly k are <= R).
    uint64_t lo = 0, hi = ~uint64_t(0);
    while (lo < hi) {
      const uint64_t mid = lo + (hi - lo) / 2;
      int64_t c = 0;
      for (int64_t e = lane; e < d; e += 32) c += sample::rank_of(key, e) <= mid;
      for (int off = 16; off > 0; off >>= 1) c += __shfl_xor_sync(kFullMask, c, off);
      if (c >= fanout) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    int64_t pos = 0;
    for (int64_t e0 = 0; e0 < d; e0 += 32) {
      const int64_t e = e0 + lane;
      const bool keep = e < d && sample::rank_of(key, e) <= lo;
      const unsigned kept = __ballot_sync(kFullMask, keep);
      if (keep) o[pos + __popc(kept & ((1u << lane) - 1u))] = static_cast<int64_t>(cl[base + e]);
      pos += __popc(kept);
    }
  }
}

int blocks_for(int64_t n) {
  int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<int>(b < 65535 ? (b > 0 ? b : 1) : 65535);
}

// The sample of the rows `nodes` (global columns): (out_rowptr [n+1], out_col [k]) int64.
std::tuple<at::Tensor, at::Tensor> sample_rows(const at::Tensor& rp, const at::Tensor& cl, const at::Tensor& nd,
                                               int64_t fanout, bool replace, int64_t seed, int64_t hop,
                                               cudaStream_t stream) {
  const int64_t n = nd.numel();
  auto out_rp = at::zeros({n + 1}, nd.options());
  if (n == 0) return {out_rp, at::empty({0}, nd.options())};
  auto cnt = at::empty({n}, nd.options());
  at::Tensor out;
  AT_DISPATCH_INDEX_TYPES(rp.scalar_type(), "sample_rows_cuda", [&] {
    SVG_LAUNCH(blocks_for(n), kThreads, 0, stream, count_rows_kernel<index_t>)(
        rp.data_ptr<index_t>(), nd.data_ptr<int64_t>(), n, fanout, replace, cnt.data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    at::Tensor tail = out_rp.narrow(0, 1, n);
    at::cumsum_out(tail, cnt, 0);
    const int64_t total = out_rp[n].item<int64_t>();  // one sync: the output size
    out = at::empty({total}, nd.options());
    SVG_LAUNCH(blocks_for(n), kThreads, 0, stream, fill_rows_kernel<index_t>)(
        rp.data_ptr<index_t>(), cl.data_ptr<index_t>(), nd.data_ptr<int64_t>(), n, fanout, replace,
        static_cast<uint64_t>(seed), hop, out_rp.data_ptr<int64_t>(), out.data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const int64_t warps = std::max<int64_t>(n / 8, 1);  // ~8 rows per warp, heavy ones by the whole warp
    SVG_LAUNCH(blocks_for(warps * 32), kThreads, 0, stream, fill_warp_rows_kernel<index_t>)(
        rp.data_ptr<index_t>(), cl.data_ptr<index_t>(), nd.data_ptr<int64_t>(), n, fanout, replace,
        static_cast<uint64_t>(seed), hop, out_rp.data_ptr<int64_t>(), out.data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {out_rp, out};
}

std::tuple<at::Tensor, at::Tensor> sample_adj_cuda(const at::Tensor& rowptr, const at::Tensor& col,
                                                   const at::Tensor& nodes, int64_t fanout, bool replace,
                                                   int64_t seed, int64_t hop) {
  check_sample_args(rowptr, col, nodes, "nodes", {fanout});
  const c10::cuda::CUDAGuard guard(rowptr.device());
  return sample_rows(rowptr.contiguous(), col.contiguous(), nodes.contiguous(), fanout, replace, seed, hop,
                     c10::cuda::getCurrentCUDAStream());
}

// sample_aggregate's sum over the sampled CSR, one warp per row, the lanes over the features:
// y[i] = c_v^2 x[v] + c_v (d_v / k_i) sum_{e in row i} c_u x[u], u = out_col[e].
template <typename scalar_t, typename acc_t, typename idx_t>
__global__ void aggregate_sampled_kernel(const idx_t* __restrict__ rp, const int64_t* __restrict__ nodes,
                                         int64_t n, const int64_t* __restrict__ out_rp,
                                         const int64_t* __restrict__ out_col, const scalar_t* __restrict__ x,
                                         const acc_t* __restrict__ norm, int64_t F, scalar_t* __restrict__ y) {
  const int lane = threadIdx.x % 32;
  const int64_t n_warps = static_cast<int64_t>(gridDim.x) * blockDim.x / 32;
  for (int64_t i = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32; i < n; i += n_warps) {
    const int64_t v = nodes[i];
    const int64_t d = static_cast<int64_t>(rp[v + 1]) - static_cast<int64_t>(rp[v]);
    const int64_t a0 = out_rp[i], a1 = out_rp[i + 1];
    const acc_t c = norm[v];
    const acc_t scale = a1 > a0 ? c * (static_cast<acc_t>(d) / static_cast<acc_t>(a1 - a0)) : c;
    for (int64_t f = lane; f < F; f += 32) {
      acc_t s = acc_t(0);
      for (int64_t e = a0; e < a1; ++e) {
        const int64_t u = out_col[e];
        s += norm[u] * static_cast<acc_t>(x[u * F + f]);
      }
      y[i * F + f] = static_cast<scalar_t>(c * c * static_cast<acc_t>(x[v * F + f]) + scale * s);
    }
  }
}

// On the GPU the sample goes through sample_adj's kernels into a temporary CSR (k int64 entries;
// the GPU's bandwidth makes that cheap, and heavy rows keep their warp-wide sampling), then one
// pass sums it; the CPU kernel fuses both (csrc/cpu/sample.cpp).
at::Tensor sample_aggregate_cuda(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& nodes,
                                 const at::Tensor& x, const at::Tensor& norm, int64_t fanout, bool replace,
                                 int64_t seed, int64_t hop) {
  check_sample_aggregate_args(rowptr, col, nodes, x, norm, fanout);
  const c10::cuda::CUDAGuard guard(rowptr.device());
  auto stream = c10::cuda::getCurrentCUDAStream();
  auto rp = rowptr.contiguous(), nd = nodes.contiguous(), xc = x.contiguous(), nm = norm.contiguous();
  const int64_t n = nd.numel();
  auto y = at::empty({n, xc.size(1)}, xc.options());
  if (y.numel() == 0) return y;
  auto sampled = sample_rows(rp, col.contiguous(), nd, fanout, replace, seed, hop, stream);
  const at::Tensor& out_rp = std::get<0>(sampled);
  const at::Tensor& out_col = std::get<1>(sampled);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, xc.scalar_type(), "sample_aggregate_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    AT_DISPATCH_INDEX_TYPES(rp.scalar_type(), "sample_aggregate_cuda_index", [&] {
      SVG_LAUNCH(blocks_for(n * 32), kThreads, 0, stream, aggregate_sampled_kernel<scalar_t, acc_t, index_t>)(
          rp.data_ptr<index_t>(), nd.data_ptr<int64_t>(), n, out_rp.data_ptr<int64_t>(), out_col.data_ptr<int64_t>(),
          xc.data_ptr<scalar_t>(), nm.data_ptr<acc_t>(), xc.size(1), y.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return y;
}

template <typename idx_t>
__global__ void has_pairs_kernel(const idx_t* __restrict__ rp, const idx_t* __restrict__ cl,
                                 const int64_t* __restrict__ src, const int64_t* __restrict__ dst, int64_t n,
                                 bool* __restrict__ out) {
  for (int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; k < n;
       k += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t v = src[k];
    out[k] = sample::row_has(cl, static_cast<int64_t>(rp[v]), static_cast<int64_t>(rp[v + 1]), dst[k]);
  }
}

at::Tensor csr_has_pairs_cuda(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& src,
                              const at::Tensor& dst) {
  check_has_pairs_args(rowptr, col, src, dst);
  const c10::cuda::CUDAGuard guard(rowptr.device());
  auto stream = c10::cuda::getCurrentCUDAStream();
  auto rp = rowptr.contiguous(), cl = col.contiguous(), s = src.contiguous(), d = dst.contiguous();
  const int64_t n = s.numel();
  auto out = at::empty({n}, s.options().dtype(at::kBool));
  if (n == 0) return out;
  AT_DISPATCH_INDEX_TYPES(rp.scalar_type(), "csr_has_pairs_cuda", [&] {
    SVG_LAUNCH(blocks_for(n), kThreads, 0, stream, has_pairs_kernel<index_t>)(
        rp.data_ptr<index_t>(), cl.data_ptr<index_t>(), s.data_ptr<int64_t>(), d.data_ptr<int64_t>(), n,
        out.data_ptr<bool>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace

SVG_LIBRARY_IMPL(SVG_NS, SVG_CUDA_KEY, m) {
  m.impl("sample_adj", &sample_adj_cuda);
  m.impl("sample_aggregate", &sample_aggregate_cuda);
  m.impl("csr_has_pairs", &csr_has_pairs_cuda);
}

}  // namespace scalevgae
