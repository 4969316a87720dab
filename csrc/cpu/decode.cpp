// CPU kernels of the inner-product decoder: edge_dot, edge_bce, edge_grad.
//
// edge_grad scatters into dz without atomics; every gradient row is summed over its 2E
// (edge, end) entries k = 2 e + end in increasing k, whatever the thread count: bitwise
// reproducible, no data races. Two ways to get there, same bits:
//  - owner scan (float/double, up to kOwnerMaxThreads threads): each thread owns a contiguous
//    range of rows, scans all entries and applies those that land in its range straight into
//    dz. No extra memory; the index arrays are read once per thread, cheap next to the rows.
//  - counting sort (more threads, or half/bfloat16, which sum in a float row buffer): entries
//    are sorted by node (stable: first into B contiguous node ranges, then by node within each
//    range) and every node's segment is reduced in order by the task owning its range.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <memory>
#include <type_traits>
#include <vector>

#include "checks.h"
#include "decode_host.h"
#include "decode_math.h"

namespace scalevgae {
namespace {

using decode::Reduction;

constexpr int64_t kEdgeGrain = 2048;  // edges per parallel_for task in the per-edge loops
constexpr int64_t kLossBlock = 4096;  // fixed blocks for the loss sum: order independent of threads
constexpr int64_t kAhead = 16;        // prefetch distance (edges) for the random row accesses
constexpr int64_t kOwnerMaxThreads = 4;  // above this, T scans of the indices cost more than a sort

// Rows are fetched at random: prefetching them a few edges ahead keeps many cache misses in
// flight, which is what bounds these kernels (not arithmetic).
template <typename scalar_t>
inline void prefetch_row(const scalar_t* p, int64_t F, bool write = false) {
  const char* c = reinterpret_cast<const char*>(p);
  const int64_t bytes = F * static_cast<int64_t>(sizeof(scalar_t));
  for (int64_t off = 0; off < bytes; off += 64) {
    if (write) {
      __builtin_prefetch(c + off, 1, 1);
    } else {
      __builtin_prefetch(c + off, 0, 1);
    }
  }
}

// logits[e - e0] for e in [e0, e1): the memory-bound part, kept free of transcendental math.
template <typename scalar_t, typename acc_t, typename index_t>
inline void dot_range(const scalar_t* z, const index_t* src, const index_t* dst, int64_t F, int64_t e0,
                      int64_t e1, acc_t* out) {
  for (int64_t e = e0; e < e1; ++e) {
    if (e + kAhead < e1) {
      prefetch_row(z + static_cast<int64_t>(src[e + kAhead]) * F, F);
      prefetch_row(z + static_cast<int64_t>(dst[e + kAhead]) * F, F);
    }
    out[e - e0] = decode::dot_row<scalar_t, acc_t>(z + static_cast<int64_t>(src[e]) * F,
                                                   z + static_cast<int64_t>(dst[e]) * F, F);
  }
}

at::Tensor edge_dot_cpu(const at::Tensor& z_, const at::Tensor& src_, const at::Tensor& dst_) {
  check_edge_args(z_, src_, dst_);
  const decode::EdgeOperands o = decode::edge_operands(z_, src_, dst_);
  const int64_t E = o.E, F = o.F;
  auto out = at::empty({E}, o.acc_options());
  if (E == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, o.z.scalar_type(), "edge_dot_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* zp = o.z.data_ptr<scalar_t>();
    acc_t* op = out.data_ptr<acc_t>();
    AT_DISPATCH_INDEX_TYPES(o.src.scalar_type(), "edge_dot_cpu_idx", [&] {
      const index_t* sp = o.src.data_ptr<index_t>();
      const index_t* dp = o.dst.data_ptr<index_t>();
      at::parallel_for(0, E, kEdgeGrain, [&](int64_t b, int64_t e_end) {
        dot_range<scalar_t, acc_t, index_t>(zp, sp, dp, F, b, e_end, op + b);
      });
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> edge_bce_cpu(const at::Tensor& z_, const at::Tensor& src_,
                                                const at::Tensor& dst_, const at::Tensor& label_,
                                                double pos_weight, int64_t reduction) {
  decode::check_edge_bce_args(z_, src_, dst_, label_, reduction);
  const decode::EdgeOperands o = decode::edge_operands(z_, src_, dst_, label_);
  const int64_t E = o.E, F = o.F;
  auto opts = o.acc_options();
  auto dlogit = at::empty({E}, opts);
  auto loss_vec = reduction == Reduction::kNone ? at::empty({E}, opts) : at::Tensor();
  const int64_t nblocks = (E + kLossBlock - 1) / kLossBlock;
  std::vector<double> partial(static_cast<size_t>(nblocks), 0.0);
  auto total = at::empty({}, opts);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, o.z.scalar_type(), "edge_bce_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* zp = o.z.data_ptr<scalar_t>();
    const acc_t* yp = o.vec.data_ptr<acc_t>();
    acc_t* gp = dlogit.data_ptr<acc_t>();
    acc_t* lp = loss_vec.defined() ? loss_vec.data_ptr<acc_t>() : nullptr;
    double* pp = partial.data();
    const acc_t pw = static_cast<acc_t>(pos_weight);
    const acc_t scale = decode::dlogit_scale<acc_t>(reduction, E);
    AT_DISPATCH_INDEX_TYPES(o.src.scalar_type(), "edge_bce_cpu_idx", [&] {
      const index_t* sp = o.src.data_ptr<index_t>();
      const index_t* dp = o.dst.data_ptr<index_t>();
      at::parallel_for(0, nblocks, 1, [&](int64_t b0, int64_t b1) {
        std::vector<acc_t> xs(kLossBlock);
        for (int64_t blk = b0; blk < b1; ++blk) {
          acc_t sum = 0;
          const int64_t e0 = blk * kLossBlock, e_end = std::min(E, (blk + 1) * kLossBlock);
          dot_range<scalar_t, acc_t, index_t>(zp, sp, dp, F, e0, e_end, xs.data());
          for (int64_t e = e0; e < e_end; ++e) {
            const acc_t x = xs[e - e0];
            const acc_t l = decode::bce_loss(x, yp[e], pw);
            gp[e] = decode::bce_dlogit(x, yp[e], pw) * scale;
            if (lp) lp[e] = l;
            sum += l;
          }
          pp[blk] = static_cast<double>(sum);
        }
      });
    });
    // Sequential sum of the fixed block partials: the same bits for any thread count.
    double t = 0.0;
    for (int64_t blk = 0; blk < nblocks; ++blk) t += pp[blk];
    if (reduction == Reduction::kMean) t = E > 0 ? t / static_cast<double>(E) : 0.0;
    total.fill_(static_cast<acc_t>(t));
  });
  if (reduction == Reduction::kNone) return {loss_vec, dlogit};
  return {total, dlogit};
}

// Owner scan (acc_t == scalar_t): thread t owns rows [n t / T, n (t + 1) / T), zeroes them, and
// applies the entries that update them in k order through a small buffer, so the rows it
// gathers and updates can be prefetched a few entries ahead.
template <typename scalar_t, typename index_t>
void edge_grad_owner(const scalar_t* coef, const scalar_t* z, const index_t* src, const index_t* dst, int64_t E,
                     int64_t n, int64_t F, int64_t T, scalar_t* dz) {
  at::parallel_for(0, T, 1, [&](int64_t t0, int64_t t1) {
    constexpr int kBuf = 512;
    int64_t node[kBuf], other[kBuf];
    scalar_t c[kBuf];
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t lo = n * t / T, hi = n * (t + 1) / T;
      std::fill(dz + lo * F, dz + hi * F, scalar_t(0));
      int m = 0;
      auto flush = [&]() {
        for (int k = 0; k < m; ++k) {
          if (k + kAhead < m) {
            prefetch_row(z + other[k + kAhead] * F, F);
            prefetch_row(dz + node[k + kAhead] * F, F, true);
          }
          decode::axpy_row<scalar_t, scalar_t>(dz + node[k] * F, c[k], z + other[k] * F, F);
        }
        m = 0;
      };
      for (int64_t e = 0; e < E; ++e) {
        const int64_t s = static_cast<int64_t>(src[e]), d = static_cast<int64_t>(dst[e]);
        if (s >= lo && s < hi) node[m] = s, other[m] = d, c[m++] = coef[e];  // entry k = 2 e
        if (d >= lo && d < hi) node[m] = d, other[m] = s, c[m++] = coef[e];  // entry k = 2 e + 1
        if (m > kBuf - 2) flush();
      }
      flush();
    }
  });
}

template <typename scalar_t, typename acc_t, typename index_t>
void edge_grad_kernel(const acc_t* coef, const scalar_t* z, const index_t* src, const index_t* dst, int64_t E,
                      int64_t n, int64_t F, scalar_t* dz) {
  const int64_t M = 2 * E;  // entry k = 2 e + end: end 0 updates src[e], end 1 updates dst[e]
  const int64_t T = std::max<int64_t>(1, at::get_num_threads());
  if constexpr (std::is_same_v<scalar_t, acc_t>) {
    if (T <= kOwnerMaxThreads) return edge_grad_owner<scalar_t, index_t>(coef, z, src, dst, E, n, F, T, dz);
  }
  // Node buckets: at least ~8 contiguous node ranges per thread (balance), at most 2^15 nodes
  // each (the per-bucket counting arrays stay in L2); entry chunks for the first sort level.
  const int64_t per = std::max<int64_t>(1, std::min<int64_t>((n + 8 * T - 1) / (8 * T), int64_t(1) << 15));
  const int64_t B = (n + per - 1) / per;
  const int64_t C = std::max<int64_t>(1, std::min<int64_t>(4 * T, M / 65536));
  const int64_t csize = (M + C - 1) / C;
  // Pass 1: histogram of each entry chunk over the node buckets.
  std::vector<int64_t> cnt(static_cast<size_t>(C * B), 0);
  at::parallel_for(0, C, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      int64_t* h = cnt.data() + c * B;
      const int64_t k1 = std::min(M, (c + 1) * csize);
      for (int64_t k = c * csize; k < k1; ++k) {
        const int64_t e = k >> 1;
        ++h[static_cast<int64_t>((k & 1) ? dst[e] : src[e]) / per];
      }
    }
  });
  // Pass 2: bucket-major exclusive scan -> where each (chunk, bucket) run starts.
  std::vector<int64_t> bucket_ptr(static_cast<size_t>(B + 1), 0);
  int64_t run = 0;
  for (int64_t b = 0; b < B; ++b) {
    bucket_ptr[b] = run;
    for (int64_t c = 0; c < C; ++c) {
      const int64_t v = cnt[c * B + b];
      cnt[c * B + b] = run;
      run += v;
    }
  }
  bucket_ptr[B] = run;
  // Pass 3: stable scatter of (node, other end, coef) into the buckets, so the reduction below
  // reads them sequentially.
  // Uninitialized (every slot is written below): avoids zero-filling 3 x 2E entries.
  std::unique_ptr<int64_t[]> ent_node(new int64_t[M]), ent_other(new int64_t[M]);
  std::unique_ptr<acc_t[]> ent_coef(new acc_t[M]);
  at::parallel_for(0, C, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      int64_t* cur = cnt.data() + c * B;
      const int64_t k1 = std::min(M, (c + 1) * csize);
      for (int64_t k = c * csize; k < k1; ++k) {
        const int64_t e = k >> 1;
        const int64_t s = static_cast<int64_t>(src[e]), d = static_cast<int64_t>(dst[e]);
        const int64_t node = (k & 1) ? d : s;
        const int64_t pos = cur[node / per]++;
        ent_node[pos] = node;
        ent_other[pos] = (k & 1) ? s : d;
        ent_coef[pos] = coef[e];
      }
    }
  });
  // Pass 4: per bucket, a stable counting sort by node, then each node's row is summed in a
  // local accumulator and written once (rows without entries get zeros): dz is written as
  // one sequential stream, and buckets own disjoint rows.
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<int64_t> ptr, perm;
    std::vector<acc_t> row(static_cast<size_t>(F));
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r0 = b * per, m = std::min(n, (b + 1) * per) - r0;
      const int64_t s0 = bucket_ptr[b], s1 = bucket_ptr[b + 1];
      ptr.assign(static_cast<size_t>(m + 1), 0);
      for (int64_t i = s0; i < s1; ++i) ++ptr[ent_node[i] - r0 + 1];
      for (int64_t r = 0; r < m; ++r) ptr[r + 1] += ptr[r];
      perm.resize(static_cast<size_t>(s1 - s0));
      for (int64_t i = s0; i < s1; ++i) perm[ptr[ent_node[i] - r0]++] = i;
      // ptr[r] now holds the end of row r's segment (the start of row r + 1).
      const int64_t cntb = s1 - s0;
      int64_t j = 0;
      for (int64_t r = 0; r < m; ++r) {
        std::fill(row.begin(), row.end(), acc_t(0));
        for (; j < ptr[r]; ++j) {
          if (j + kAhead < cntb) prefetch_row(z + ent_other[perm[j + kAhead]] * F, F);
          const int64_t i = perm[j];
          decode::axpy_row<scalar_t, acc_t>(row.data(), ent_coef[i], z + ent_other[i] * F, F);
        }
        scalar_t* out = dz + (r0 + r) * F;
        for (int64_t f = 0; f < F; ++f) out[f] = static_cast<scalar_t>(row[f]);
      }
    }
  });
}

at::Tensor edge_grad_cpu(const at::Tensor& coef_, const at::Tensor& z_, const at::Tensor& src_,
                         const at::Tensor& dst_, bool deterministic) {
  (void)deterministic;  // the CPU scatter is always deterministic
  decode::check_edge_grad_args(coef_, z_, src_, dst_);
  const decode::EdgeOperands o = decode::edge_operands(z_, src_, dst_, coef_);
  if (o.zero_grad()) return at::zeros_like(o.z, at::MemoryFormat::Contiguous);
  auto dz = at::empty({o.n, o.F}, o.z.options());  // every row is written by the kernel
  const auto dtype = o.z.scalar_type();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "edge_grad_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    AT_DISPATCH_INDEX_TYPES(o.src.scalar_type(), "edge_grad_cpu_idx", [&] {
      edge_grad_kernel<scalar_t, acc_t, index_t>(
          o.vec.data_ptr<acc_t>(), o.z.data_ptr<scalar_t>(), o.src.data_ptr<index_t>(),
          o.dst.data_ptr<index_t>(), o.E, o.n, o.F, dz.data_ptr<scalar_t>());
    });
  });
  return dz;
}

}  // namespace

TORCH_LIBRARY_IMPL(scalevgae, CPU, m) {
  m.impl("edge_dot", &edge_dot_cpu);
  m.impl("edge_bce", &edge_bce_cpu);
  m.impl("edge_grad", &edge_grad_cpu);
}

}  // namespace scalevgae
