// CUDA kernel of the exact all-pairs objective (schema in csrc/ops.cpp): one thread per row i
// sums softplus(z_i . z_j) over every column j and accumulates 2 sigmoid(z_i . z_j) z_j into its
// own gradient row (no atomics, deterministic). O(N^2 F) work with no tiling: the Triton
// kernels (scalevgae/ops/triton/all_pairs.py) are the fast GPU path; this one is the CUDA
// counterpart of the CPU kernel, run in CI through cuda_sim.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>

#include "all_pairs_math.h"
#include "checks.h"
#include "cuda_launch.h"
#include "decode_math.h"
#include "library_ns.h"

namespace scalevgae {
namespace {

constexpr int kThreads = 256;

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    all_pairs_rows_kernel(const scalar_t* __restrict__ z, int64_t N, int64_t F, acc_t* __restrict__ grad,
                          double* __restrict__ row_loss) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < N; i += stride) {
    const scalar_t* zi = z + i * F;
    acc_t* gi = grad != nullptr ? grad + i * F : nullptr;
    double loss = 0.0;
    for (int64_t j = 0; j < N; ++j) {
      const scalar_t* zj = z + j * F;
      const auto t = all_pairs::pair_terms<acc_t>(decode::dot_row<scalar_t, acc_t>(zi, zj, F));
      loss += static_cast<double>(t.softplus);
      if (gi != nullptr) decode::axpy_row<scalar_t, acc_t>(gi, t.sigmoid, zj, F);
    }
    row_loss[i] = loss;
    if (gi != nullptr) {
      for (int64_t f = 0; f < F; ++f) gi[f] *= acc_t(2);
    }
  }
}

std::tuple<at::Tensor, at::Tensor> all_pairs_softplus_cuda(const at::Tensor& z_, bool need_grad) {
  check_all_pairs_args(z_);
  const c10::cuda::CUDAGuard guard(z_.device());
  const at::Tensor z = z_.contiguous();
  const int64_t N = z.size(0), F = z.size(1);
  const auto acc_opts = z.options().dtype(acc_dtype(z.scalar_type()));
  auto grad = need_grad ? at::zeros({N, F}, acc_opts) : at::empty({0, F}, acc_opts);
  auto row_loss = at::zeros({N}, z.options().dtype(at::kDouble));
  if (N > 0) {
    const int64_t blocks = std::min<int64_t>((N + kThreads - 1) / kThreads, int64_t(1) << 20);
    auto stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, z.scalar_type(), "all_pairs_softplus_cuda", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      SVG_LAUNCH(blocks, kThreads, 0, stream, all_pairs_rows_kernel<scalar_t, acc_t>)(
          z.data_ptr<scalar_t>(), N, F, need_grad ? grad.data_ptr<acc_t>() : nullptr, row_loss.data_ptr<double>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return {row_loss.sum(), grad};
}

}  // namespace

SVG_LIBRARY_IMPL(SVG_NS, SVG_CUDA_KEY, m) { m.impl("all_pairs_softplus", &all_pairs_softplus_cuda); }

}  // namespace scalevgae
