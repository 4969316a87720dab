// CUDA kernels of the inner-product decoder: edge_dot, edge_bce, edge_grad.
//
// A group of G lanes (G = 4..32, a power of two dividing the warp) handles one edge; each lane
// loads VEC consecutive features per step with one 16-byte load when the rows allow it, and
// the group reduces its partial dot with xor-shuffles. edge_grad scatters with atomicAdd by
// default; in deterministic mode it sorts the 2E (node, edge end) entries by node (stable) and
// reduces each node's segment in order, writing every row once.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "checks.h"
#include "cuda_launch.h"
#include "library_ns.h"
#include "decode_host.h"
#include "decode_math.h"

namespace scalevgae {
namespace {

using decode::Reduction;

template <typename T>
struct AccOf {
  using type = float;
};
template <>
struct AccOf<double> {
  using type = double;
};

constexpr int kThreads = 256;

template <typename scalar_t, int VEC>
struct alignas(sizeof(scalar_t) * VEC) Pack {
  scalar_t v[VEC];
};

template <typename scalar_t, int VEC>
__device__ __forceinline__ Pack<scalar_t, VEC> load_pack(const scalar_t* p) {
  return *reinterpret_cast<const Pack<scalar_t, VEC>*>(p);
}

// Partial dot of rows a, b over the features this lane owns: f = lane*VEC + k*G*VEC.
template <typename scalar_t, typename acc_t, int VEC, int G>
__device__ __forceinline__ acc_t lane_dot(const scalar_t* a, const scalar_t* b, int64_t F, int lane) {
  acc_t s = 0;
  for (int64_t f = static_cast<int64_t>(lane) * VEC; f < F; f += G * VEC) {
    auto pa = load_pack<scalar_t, VEC>(a + f);
    auto pb = load_pack<scalar_t, VEC>(b + f);
#pragma unroll
    for (int v = 0; v < VEC; ++v) s += static_cast<acc_t>(pa.v[v]) * static_cast<acc_t>(pb.v[v]);
  }
  return s;
}

template <typename acc_t, int G>
__device__ __forceinline__ acc_t group_sum(acc_t s) {
#pragma unroll
  for (int off = G / 2; off > 0; off /= 2) s += __shfl_xor_sync(0xffffffffu, s, off);
  return s;
}

// One G-lane group per edge. The loop bound is uniform across a warp (all lanes reach the
// shuffles); `valid` masks the tail. With `loss_out`, also the BCE epilogue.
template <typename scalar_t, typename acc_t, typename index_t, int VEC, int G>
__global__ void edge_dot_kernel(const scalar_t* __restrict__ z, const index_t* __restrict__ src,
                                const index_t* __restrict__ dst, int64_t E, int64_t F, acc_t* __restrict__ logits,
                                const acc_t* __restrict__ label, acc_t pos_weight, acc_t scale,
                                acc_t* __restrict__ loss_out, acc_t* __restrict__ dlogit_out) {
  constexpr int kGroupsPerWarp = 32 / G;
  const int lane_w = threadIdx.x & 31;
  const int lane = lane_w % G;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int64_t n_warps = (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5;
  for (int64_t base = warp * kGroupsPerWarp; base < E; base += n_warps * kGroupsPerWarp) {
    const int64_t e = base + lane_w / G;
    const bool valid = e < E;
    acc_t s = 0;
    if (valid) {
      const int64_t a = static_cast<int64_t>(src[e]), b = static_cast<int64_t>(dst[e]);
      s = lane_dot<scalar_t, acc_t, VEC, G>(z + a * F, z + b * F, F, lane);
    }
    s = group_sum<acc_t, G>(s);
    if (valid && lane == 0) {
      if (logits) logits[e] = s;
      if (loss_out) {
        loss_out[e] = decode::bce_loss(s, label[e], pos_weight);
        dlogit_out[e] = decode::bce_dlogit(s, label[e], pos_weight) * scale;
      }
    }
  }
}

// dz[src] += coef * z[dst], dz[dst] += coef * z[src] with atomics into an acc_t buffer.
template <typename scalar_t, typename acc_t, typename index_t, int VEC, int G>
__global__ void edge_grad_atomic_kernel(const acc_t* __restrict__ coef, const scalar_t* __restrict__ z,
                                        const index_t* __restrict__ src, const index_t* __restrict__ dst,
                                        int64_t E, int64_t F, acc_t* __restrict__ dz) {
  const int lane = threadIdx.x % G;
  const int64_t group = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / G;
  const int64_t n_groups = (static_cast<int64_t>(gridDim.x) * blockDim.x) / G;
  for (int64_t e = group; e < E; e += n_groups) {
    const int64_t a = static_cast<int64_t>(src[e]), b = static_cast<int64_t>(dst[e]);
    const acc_t c = coef[e];
    for (int64_t f = static_cast<int64_t>(lane) * VEC; f < F; f += G * VEC) {
      auto pa = load_pack<scalar_t, VEC>(z + a * F + f);
      auto pb = load_pack<scalar_t, VEC>(z + b * F + f);
#pragma unroll
      for (int v = 0; v < VEC; ++v) {
        atomicAdd(dz + a * F + f + v, c * static_cast<acc_t>(pb.v[v]));
        atomicAdd(dz + b * F + f + v, c * static_cast<acc_t>(pa.v[v]));
      }
    }
  }
}

// Deterministic: node i's entries are perm[rowptr[i] .. rowptr[i+1]) of the stable sort of
// cat(src, dst); entry k < E is end 0 of edge k (other end dst[k]), k >= E end 1 of edge k - E.
template <typename scalar_t, typename acc_t, typename index_t, int VEC, int G>
__global__ void edge_grad_segment_kernel(const acc_t* __restrict__ coef, const scalar_t* __restrict__ z,
                                         const index_t* __restrict__ src, const index_t* __restrict__ dst,
                                         const int64_t* __restrict__ perm, const int64_t* __restrict__ rowptr,
                                         int64_t E, int64_t n, int64_t F, scalar_t* __restrict__ dz) {
  const int lane = threadIdx.x % G;
  const int64_t group = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / G;
  const int64_t n_groups = (static_cast<int64_t>(gridDim.x) * blockDim.x) / G;
  for (int64_t i = group; i < n; i += n_groups) {
    const int64_t j0 = rowptr[i], j1 = rowptr[i + 1];
    for (int64_t f = static_cast<int64_t>(lane) * VEC; f < F; f += G * VEC) {
      acc_t acc[VEC];
#pragma unroll
      for (int v = 0; v < VEC; ++v) acc[v] = 0;
      for (int64_t j = j0; j < j1; ++j) {
        const int64_t k = perm[j];
        const int64_t e = k < E ? k : k - E;
        const int64_t other = static_cast<int64_t>(k < E ? dst[e] : src[e]);
        const acc_t c = coef[e];
        auto p = load_pack<scalar_t, VEC>(z + other * F + f);
#pragma unroll
        for (int v = 0; v < VEC; ++v) acc[v] += c * static_cast<acc_t>(p.v[v]);
      }
      Pack<scalar_t, VEC> out;
#pragma unroll
      for (int v = 0; v < VEC; ++v) out.v[v] = static_cast<scalar_t>(acc[v]);
      *reinterpret_cast<Pack<scalar_t, VEC>*>(dz + i * F + f) = out;
    }
  }
}

// Lanes per item: enough to cover F with VEC-wide loads, a power of two in [4, 32].
int pick_group(int64_t F, int vec) {
  const int64_t need = (F + vec - 1) / vec;
  int g = 4;
  while (g < 32 && g < need) g *= 2;
  return g;
}

int64_t blocks_for(int64_t items, int G) {
  const int64_t threads = std::max<int64_t>(items, 1) * G;
  return std::min<int64_t>((threads + kThreads - 1) / kThreads, int64_t(1) << 20);
}

// Calls fn(VEC_constant, G_constant) with 16-byte packs when every row start is 16-byte aligned.
template <typename scalar_t, typename Fn>
void with_vec_group(const at::Tensor& z, int64_t F, Fn&& fn) {
  constexpr int kVec = 16 / sizeof(scalar_t);
  const bool aligned = F % kVec == 0 && reinterpret_cast<uintptr_t>(z.data_ptr()) % 16 == 0;
  const int vec = aligned ? kVec : 1;
  const int G = pick_group(F, vec);
#define SVG_CASE_G(V, GG) \
  if (G == GG) return fn(std::integral_constant<int, V>(), std::integral_constant<int, GG>());
  if (aligned) {
    SVG_CASE_G(kVec, 4) SVG_CASE_G(kVec, 8) SVG_CASE_G(kVec, 16) SVG_CASE_G(kVec, 32)
  } else {
    SVG_CASE_G(1, 4) SVG_CASE_G(1, 8) SVG_CASE_G(1, 16) SVG_CASE_G(1, 32)
  }
#undef SVG_CASE_G
  TORCH_CHECK(false, "edge decoding: no kernel for group size ", G);
}

// Shared launcher of edge_dot / edge_bce.
void launch_edge_dot(const at::Tensor& z, const at::Tensor& src, const at::Tensor& dst, at::Tensor* logits,
                     const at::Tensor* label, double pos_weight, double scale, at::Tensor* loss,
                     at::Tensor* dlogit) {
  const int64_t E = src.size(0), F = z.size(1);
  if (E == 0) return;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, z.scalar_type(), "edge_dot_cuda", [&] {
    using acc_t = typename AccOf<scalar_t>::type;
    AT_DISPATCH_INDEX_TYPES(src.scalar_type(), "edge_dot_cuda_idx", [&] {
      with_vec_group<scalar_t>(z, F, [&](auto vec_c, auto g_c) {
        constexpr int VEC = decltype(vec_c)::value;
        constexpr int G = decltype(g_c)::value;
        SVG_LAUNCH(blocks_for(E, G), kThreads, 0, stream, edge_dot_kernel<scalar_t, acc_t, index_t, VEC, G>)(
            z.data_ptr<scalar_t>(), src.data_ptr<index_t>(), dst.data_ptr<index_t>(), E, F,
            logits ? logits->data_ptr<acc_t>() : nullptr, label ? label->data_ptr<acc_t>() : nullptr,
            static_cast<acc_t>(pos_weight), static_cast<acc_t>(scale), loss ? loss->data_ptr<acc_t>() : nullptr,
            dlogit ? dlogit->data_ptr<acc_t>() : nullptr);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  });
}

at::Tensor edge_dot_cuda(const at::Tensor& z_, const at::Tensor& src_, const at::Tensor& dst_) {
  check_edge_args(z_, src_, dst_);
  const c10::cuda::CUDAGuard guard(z_.device());
  const decode::EdgeOperands o = decode::edge_operands(z_, src_, dst_);
  auto out = at::empty({o.E}, o.acc_options());
  launch_edge_dot(o.z, o.src, o.dst, &out, nullptr, 1.0, 1.0, nullptr, nullptr);
  return out;
}

std::tuple<at::Tensor, at::Tensor> edge_bce_cuda(const at::Tensor& z_, const at::Tensor& src_,
                                                 const at::Tensor& dst_, const at::Tensor& label_,
                                                 double pos_weight, int64_t reduction) {
  decode::check_edge_bce_args(z_, src_, dst_, label_, reduction);
  const c10::cuda::CUDAGuard guard(z_.device());
  const decode::EdgeOperands o = decode::edge_operands(z_, src_, dst_, label_);
  const int64_t E = o.E;
  auto opts = o.acc_options();
  auto loss = at::empty({E}, opts);
  auto dlogit = at::empty({E}, opts);
  const double scale = decode::dlogit_scale<double>(reduction, E);
  launch_edge_dot(o.z, o.src, o.dst, nullptr, &o.vec, pos_weight, scale, &loss, &dlogit);
  if (reduction == Reduction::kNone) return {loss, dlogit};
  // torch's sum is deterministic for a fixed size; mean of zero edges is 0.
  auto total = loss.sum();
  if (reduction == Reduction::kMean) total = E > 0 ? total / static_cast<double>(E) : at::zeros({}, opts);
  return {total, dlogit};
}

at::Tensor edge_grad_cuda(const at::Tensor& coef_, const at::Tensor& z_, const at::Tensor& src_,
                          const at::Tensor& dst_, bool deterministic) {
  decode::check_edge_grad_args(coef_, z_, src_, dst_);
  const c10::cuda::CUDAGuard guard(z_.device());
  const decode::EdgeOperands o = decode::edge_operands(z_, src_, dst_, coef_);
  if (o.zero_grad()) return at::zeros_like(o.z, at::MemoryFormat::Contiguous);
  const at::Tensor &z = o.z, &src = o.src, &dst = o.dst, &coef = o.vec;
  const int64_t E = o.E, n = o.n, F = o.F;
  auto stream = c10::cuda::getCurrentCUDAStream();
  if (deterministic) {
    // Stable sort of the 2E entries by node; rowptr by binary search: no atomics anywhere.
    auto keys = at::cat({src.to(at::kLong), dst.to(at::kLong)});
    auto sorted = at::sort(keys, /*stable=*/true, /*dim=*/0, /*descending=*/false);
    auto perm = std::get<1>(sorted).contiguous();
    auto rowptr = at::searchsorted(std::get<0>(sorted), at::arange(n + 1, keys.options())).contiguous();
    auto dz = at::empty({n, F}, z.options());
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, z.scalar_type(), "edge_grad_cuda_det", [&] {
      using acc_t = typename AccOf<scalar_t>::type;
      AT_DISPATCH_INDEX_TYPES(src.scalar_type(), "edge_grad_cuda_det_idx", [&] {
        with_vec_group<scalar_t>(z, F, [&](auto vec_c, auto g_c) {
          constexpr int VEC = decltype(vec_c)::value;
          constexpr int G = decltype(g_c)::value;
          SVG_LAUNCH(blocks_for(n, G), kThreads, 0, stream, edge_grad_segment_kernel<scalar_t, acc_t, index_t, VEC, G>)(
              coef.data_ptr<acc_t>(), z.data_ptr<scalar_t>(), src.data_ptr<index_t>(), dst.data_ptr<index_t>(),
              perm.data_ptr<int64_t>(), rowptr.data_ptr<int64_t>(), E, n, F, dz.data_ptr<scalar_t>());
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        });
      });
    });
    return dz;
  }
  auto dz_acc = at::zeros({n, F}, o.acc_options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, z.scalar_type(), "edge_grad_cuda", [&] {
    using acc_t = typename AccOf<scalar_t>::type;
    AT_DISPATCH_INDEX_TYPES(src.scalar_type(), "edge_grad_cuda_idx", [&] {
      with_vec_group<scalar_t>(z, F, [&](auto vec_c, auto g_c) {
        constexpr int VEC = decltype(vec_c)::value;
        constexpr int G = decltype(g_c)::value;
        SVG_LAUNCH(blocks_for(E, G), kThreads, 0, stream, edge_grad_atomic_kernel<scalar_t, acc_t, index_t, VEC, G>)(
            coef.data_ptr<acc_t>(), z.data_ptr<scalar_t>(), src.data_ptr<index_t>(), dst.data_ptr<index_t>(), E, F,
            dz_acc.data_ptr<acc_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  });
  return dz_acc.scalar_type() == z.scalar_type() ? dz_acc : dz_acc.to(z.scalar_type());
}

}  // namespace

SVG_LIBRARY_IMPL(SVG_NS, SVG_CUDA_KEY, m) {
  m.impl("edge_dot", &edge_dot_cuda);
  m.impl("edge_bce", &edge_bce_cuda);
  m.impl("edge_grad", &edge_grad_cuda);
}

}  // namespace scalevgae
