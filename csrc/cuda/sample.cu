// CUDA per-row neighbor sampling (one thread per destination row) with the counter-based RNG
// of sample_math.h, so it returns exactly what the CPU kernel and the reference return. The
// relabel step runs on the GPU too, through sort-based torch ops (scalevgae/sampling/neighbor.py).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>

#include "checks.h"
#include "sample_math.h"

namespace scalevgae {
namespace {

constexpr int kThreads = 256;

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
    sample::sample_row(sample::stream_key(seed, hop, v), d, fanout, replace, o);
    for (int64_t j = 0; j < cnt; ++j) o[j] = static_cast<int64_t>(cl[base + o[j]]);
  }
}

int blocks_for(int64_t n) {
  int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<int>(b < 65535 ? (b > 0 ? b : 1) : 65535);
}

std::tuple<at::Tensor, at::Tensor> sample_adj_cuda(const at::Tensor& rowptr, const at::Tensor& col,
                                                   const at::Tensor& nodes, int64_t fanout, bool replace,
                                                   int64_t seed, int64_t hop) {
  check_index_1d(rowptr, "rowptr");
  check_index_1d(col, "col");
  check_same_dtype(rowptr, "rowptr", col, "col");
  TORCH_CHECK_TYPE(nodes.scalar_type() == at::kLong, "nodes must be int64, got ", nodes.scalar_type());
  TORCH_CHECK_VALUE(nodes.dim() == 1, "nodes must be 1-D, got shape ", nodes.sizes());
  check_same_device(rowptr, "rowptr", col, "col");
  check_same_device(rowptr, "rowptr", nodes, "nodes");
  TORCH_CHECK_VALUE(fanout >= -1, "fanout must be >= -1, got ", fanout);
  const c10::cuda::CUDAGuard guard(rowptr.device());
  auto stream = c10::cuda::getCurrentCUDAStream();
  auto rp = rowptr.contiguous(), cl = col.contiguous(), nd = nodes.contiguous();
  const int64_t n = nd.numel();
  auto out_rp = at::zeros({n + 1}, nd.options());
  if (n == 0) return {out_rp, at::empty({0}, nd.options())};
  auto cnt = at::empty({n}, nd.options());
  at::Tensor out;
  AT_DISPATCH_INDEX_TYPES(rp.scalar_type(), "sample_adj_cuda", [&] {
    count_rows_kernel<index_t><<<blocks_for(n), kThreads, 0, stream>>>(
        rp.data_ptr<index_t>(), nd.data_ptr<int64_t>(), n, fanout, replace, cnt.data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    at::Tensor tail = out_rp.narrow(0, 1, n);
    at::cumsum_out(tail, cnt, 0);
    const int64_t total = out_rp[n].item<int64_t>();  // one sync: the output size
    out = at::empty({total}, nd.options());
    fill_rows_kernel<index_t><<<blocks_for(n), kThreads, 0, stream>>>(
        rp.data_ptr<index_t>(), cl.data_ptr<index_t>(), nd.data_ptr<int64_t>(), n, fanout, replace,
        static_cast<uint64_t>(seed), hop, out_rp.data_ptr<int64_t>(), out.data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {out_rp, out};
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
  check_index_1d(rowptr, "rowptr");
  check_index_1d(col, "col");
  check_same_dtype(rowptr, "rowptr", col, "col");
  TORCH_CHECK_TYPE(src.scalar_type() == at::kLong && dst.scalar_type() == at::kLong, "src and dst must be int64");
  check_length(dst, src.numel(), "dst", "src.numel()");
  check_same_device(rowptr, "rowptr", col, "col");
  check_same_device(rowptr, "rowptr", src, "src");
  check_same_device(rowptr, "rowptr", dst, "dst");
  const c10::cuda::CUDAGuard guard(rowptr.device());
  auto stream = c10::cuda::getCurrentCUDAStream();
  auto rp = rowptr.contiguous(), cl = col.contiguous(), s = src.contiguous(), d = dst.contiguous();
  const int64_t n = s.numel();
  auto out = at::empty({n}, s.options().dtype(at::kBool));
  if (n == 0) return out;
  AT_DISPATCH_INDEX_TYPES(rp.scalar_type(), "csr_has_pairs_cuda", [&] {
    has_pairs_kernel<index_t><<<blocks_for(n), kThreads, 0, stream>>>(
        rp.data_ptr<index_t>(), cl.data_ptr<index_t>(), s.data_ptr<int64_t>(), d.data_ptr<int64_t>(), n,
        out.data_ptr<bool>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(scalevgae, CUDA, m) {
  m.impl("sample_adj", &sample_adj_cuda);
  m.impl("csr_has_pairs", &csr_has_pairs_cuda);
}

}  // namespace scalevgae
