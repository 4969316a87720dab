// CPU kernels of the inner-product decoder: edge_dot, edge_bce, edge_grad.
//
// All three are bound by fetching two random rows of z per edge: each loop prefetches the rows
// kAhead edges ahead (inline asm, into L2) and, for float rows of 16/32/64/128 features, runs a
// compile-time width (unrolled prefetches, 8-wide vector dot/axpy); other widths and dtypes take
// the runtime-width loop. The float forward is also compiled for AVX2 + FMA, picked at run time.
// edge_bce computes a fixed block of logits, then its exp/log1p 8 at a time (simd8.h): the
// block sums, added in block order, are the same bits for any thread count.
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
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

#include "checks.h"
#include "cpu/isa.h"
#include "cpu/mapped_zeros.h"
#include "cpu/prefetch.h"
#include "cpu/simd8.h"
#include "cpu/width.h"
#include "decode_host.h"
#include "decode_math.h"

namespace scalevgae {
namespace {

using decode::Reduction;
using namespace simd8;

constexpr int64_t kEdgeGrain = 2048;  // edges per parallel_for task in the per-edge loops
constexpr int64_t kLossBlock = 4096;  // fixed blocks for the loss sum: order independent of threads
constexpr int64_t kAhead = 32;        // prefetch distance (edges) for the random row accesses
constexpr int64_t kOwnerMaxThreads = 4;  // above this, T scans of the indices cost more than a sort

#define SVG_INLINE inline __attribute__((always_inline))

// Rows are fetched at random: prefetching them a few edges ahead keeps many cache misses in
// flight, which is what bounds these kernels (not arithmetic). Into L2 (as propagate.cpp), by
// inline asm: GCC may delete a loop made only of __builtin_prefetch (cpu/prefetch.h).
SVG_INLINE void prefetch_l2(const void* p) { cpu::prefetch</*kL1=*/false, /*kAsm=*/true>(p); }

// Every line of a row of W = (FW > 0 ? FW : F) entries (FW: the width known at compile time,
// then the loop unrolls); one more line when the row does not start on one.
template <int FW, typename scalar_t>
SVG_INLINE void prefetch_row(const scalar_t* row, int64_t F) {
  const char* c = reinterpret_cast<const char*>(row);
  const int64_t bytes = (FW > 0 ? FW : F) * static_cast<int64_t>(sizeof(scalar_t));
  for (int64_t off = 0; off < bytes; off += 64) prefetch_l2(c + off);
  if ((reinterpret_cast<uintptr_t>(c) & 63) != 0) prefetch_l2(c + bytes - 1);
}

// <a, b> of float rows: FW > 0 entries in min(FW / 8, 4) vector accumulators (a fixed order),
// FW == 0: F entries, 8 at a time, then the tail.
template <int FW>
SVG_INLINE float dot_f32(const float* a, const float* b, int64_t F) {
  if constexpr (FW > 0) {
    static_assert(FW % 8 == 0, "compile-time widths are multiples of 8");
    constexpr int K = FW / 8, A = K < 4 ? K : 4;
    v8f acc[A];
    for (int u = 0; u < A; ++u) acc[u] = vload<v8f>(a + 8 * u) * vload<v8f>(b + 8 * u);
    for (int k = A; k < K; ++k) acc[k % A] += vload<v8f>(a + 8 * k) * vload<v8f>(b + 8 * k);
    for (int u = 1; u < A; ++u) acc[0] += acc[u];
    return hsum8(acc[0]);
  } else {
    v8f acc = v8f{};
    int64_t f = 0;
    for (; f + 8 <= F; f += 8) acc += vload<v8f>(a + f) * vload<v8f>(b + f);
    float s = hsum8(acc);
    for (; f < F; ++f) s += a[f] * b[f];
    return s;
  }
}

// The rows of z [n, F] and the edge list of one call.
template <typename scalar_t, typename index_t>
struct Edges {
  const scalar_t* z;
  const index_t* src;
  const index_t* dst;
  int64_t F;
};

template <int FW, typename scalar_t, typename index_t>
SVG_INLINE void prefetch_edge(const Edges<scalar_t, index_t>& g, int64_t e) {
  const int64_t F = FW > 0 ? FW : g.F;
  prefetch_row<FW>(g.z + static_cast<int64_t>(g.src[e]) * F, F);
  prefetch_row<FW>(g.z + static_cast<int64_t>(g.dst[e]) * F, F);
}

template <int FW, typename scalar_t, typename acc_t, typename index_t>
SVG_INLINE acc_t edge_logit(const Edges<scalar_t, index_t>& g, int64_t e) {
  const int64_t F = FW > 0 ? FW : g.F;
  const scalar_t* a = g.z + static_cast<int64_t>(g.src[e]) * F;
  const scalar_t* b = g.z + static_cast<int64_t>(g.dst[e]) * F;
  if constexpr (std::is_same_v<scalar_t, float>) {
    return dot_f32<FW>(a, b, F);
  } else {
    return decode::dot_row<scalar_t, acc_t>(a, b, F);
  }
}

// out[e - e0] = logit of edge e for e in [e0, e1): the memory-bound part, kept free of
// transcendental math. The rows of edge e + kAhead are prefetched (the first kAhead up front).
template <int FW, typename scalar_t, typename acc_t, typename index_t>
SVG_INLINE void dot_range(const Edges<scalar_t, index_t>& g, int64_t e0, int64_t e1, acc_t* out) {
  const int64_t pro = std::min(e1, e0 + kAhead), mid = std::max(e0, e1 - kAhead);
  for (int64_t e = e0; e < pro; ++e) prefetch_edge<FW>(g, e);
  int64_t e = e0;
  for (; e < mid; ++e) {
    prefetch_edge<FW>(g, e + kAhead);
    out[e - e0] = edge_logit<FW, scalar_t, acc_t>(g, e);
  }
  for (; e < e1; ++e) out[e - e0] = edge_logit<FW, scalar_t, acc_t>(g, e);
}

// BCE of m logits x against labels y: g = scaled dlogit, l (may be null) the losses; returns
// their sum (8 lanes, then the tail: a fixed order). float: vectorised, the polynomial
// exp/log1p of simd8.h (relative error ~3e-7); other types: the shared scalar formulas (libm).
template <typename acc_t>
SVG_INLINE double bce_terms(const acc_t* x, const acc_t* y, int64_t m, acc_t pw, acc_t scale,
                            acc_t* g, acc_t* l) {
  int64_t i = 0;
  double total = 0.0;
  if constexpr (std::is_same_v<acc_t, float>) {
    const v8f zero = v8f{}, one = vsplat<v8f>(1.0f);
    v8f sum = zero;
    for (; i + 8 <= m; i += 8) {
      const v8f xv = vload<v8f>(x + i), yv = vload<v8f>(y + i);
      const v8f e = exp_nonpos(xv < zero ? xv : -xv);  // exp(-|x|)
      const v8f lw = 1.0f + (pw - 1.0f) * yv;
      const v8f loss = (1.0f - yv) * xv + lw * (log1p_unit(e) + (xv < zero ? -xv : zero));
      const v8f sig = (xv >= zero ? e : one) / (1.0f + e);  // sigmoid(-x)
      vstore(g + i, ((1.0f - yv) - lw * sig) * scale);
      if (l != nullptr) vstore(l + i, loss);
      sum += loss;
    }
    total = static_cast<double>(hsum8(sum));
  }
  acc_t tail = 0;
  for (; i < m; ++i) {
    const acc_t v = decode::bce_loss(x[i], y[i], pw);
    g[i] = decode::bce_dlogit(x[i], y[i], pw) * scale;
    if (l != nullptr) l[i] = v;
    tail += v;
  }
  return total + static_cast<double>(tail);
}

// One call of edge_bce: the logits' labels, outputs and fixed loss blocks.
template <typename acc_t>
struct BceOut {
  const acc_t* y;
  acc_t pw, scale;
  acc_t* g;      // [E] scaled dlogit
  acc_t* l;      // [E] losses, or null
  double* part;  // [nblocks] block sums
  int64_t E;
};

// Loss blocks [b0, b1): logits into a block buffer, then their BCE terms.
template <int FW, typename scalar_t, typename acc_t, typename index_t>
SVG_INLINE void bce_blocks(const Edges<scalar_t, index_t>& g, const BceOut<acc_t>& o, int64_t b0,
                           int64_t b1, acc_t* xs) {
  for (int64_t blk = b0; blk < b1; ++blk) {
    const int64_t e0 = blk * kLossBlock, e1 = std::min(o.E, (blk + 1) * kLossBlock);
    dot_range<FW, scalar_t, acc_t>(g, e0, e1, xs);
    o.part[blk] = bce_terms<acc_t>(xs, o.y + e0, e1 - e0, o.pw, o.scale, o.g + e0,
                                   o.l != nullptr ? o.l + e0 : nullptr);
  }
}

// The loops above, compiled for the baseline ISA and (float, picked at run time) for AVX2 + FMA
// (cpu/isa.h).
template <int FW, typename scalar_t, typename acc_t, typename index_t>
SVG_ATTR_BASE void dot_task_base(const Edges<scalar_t, index_t>& g, int64_t e0, int64_t e1,
                                 acc_t* out) {
  dot_range<FW, scalar_t, acc_t>(g, e0, e1, out);
}

template <int FW, typename scalar_t, typename acc_t, typename index_t>
SVG_ATTR_BASE void bce_task_base(const Edges<scalar_t, index_t>& g, const BceOut<acc_t>& o,
                                 int64_t b0, int64_t b1, acc_t* xs) {
  bce_blocks<FW, scalar_t, acc_t>(g, o, b0, b1, xs);
}

#if SVG_CPU_AVX2
template <int FW, typename index_t>
SVG_ATTR_AVX2 void dot_task_avx2(const Edges<float, index_t>& g, int64_t e0, int64_t e1,
                                 float* out) {
  dot_range<FW, float, float>(g, e0, e1, out);
}

template <int FW, typename index_t>
SVG_ATTR_AVX2 void bce_task_avx2(const Edges<float, index_t>& g, const BceOut<float>& o, int64_t b0,
                                 int64_t b1, float* xs) {
  bce_blocks<FW, float, float>(g, o, b0, b1, xs);
}
#endif

template <typename scalar_t, typename acc_t, typename index_t>
using DotTask = void (*)(const Edges<scalar_t, index_t>&, int64_t, int64_t, acc_t*);
template <typename scalar_t, typename acc_t, typename index_t>
using BceTask = void (*)(const Edges<scalar_t, index_t>&, const BceOut<acc_t>&, int64_t, int64_t,
                         acc_t*);

template <typename scalar_t, typename acc_t, typename index_t>
struct Tasks {
  DotTask<scalar_t, acc_t, index_t> dot;
  BceTask<scalar_t, acc_t, index_t> bce;
};

template <int FW, typename scalar_t, typename acc_t, typename index_t>
Tasks<scalar_t, acc_t, index_t> tasks_for() {
#if SVG_CPU_AVX2
  if constexpr (std::is_same_v<scalar_t, float>) {
    if (cpu::isa() != cpu::Isa::kBase)
      return {&dot_task_avx2<FW, index_t>, &bce_task_avx2<FW, index_t>};
  }
#endif
  return {&dot_task_base<FW, scalar_t, acc_t, index_t>,
          &bce_task_base<FW, scalar_t, acc_t, index_t>};
}

// The kernels of a call: float rows of 16, 32, 64 or 128 entries get a compile-time width
// (unrolled prefetch and dot), other widths and types the runtime-width loop.
template <typename scalar_t, typename acc_t, typename index_t>
Tasks<scalar_t, acc_t, index_t> pick_tasks(int64_t F) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    return cpu::with_width(
        F, [](auto w) { return tasks_for<decltype(w)::value, scalar_t, acc_t, index_t>(); });
  }
  return tasks_for<0, scalar_t, acc_t, index_t>();
}

at::Tensor edge_dot_cpu(const at::Tensor& z_, const at::Tensor& src_, const at::Tensor& dst_) {
  check_edge_args(z_, src_, dst_);
  const decode::EdgeOperands o = decode::edge_operands(z_, src_, dst_);
  const int64_t E = o.E, F = o.F;
  auto out = at::empty({E}, o.acc_options());
  if (E == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, o.z.scalar_type(), "edge_dot_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    acc_t* op = out.data_ptr<acc_t>();
    AT_DISPATCH_INDEX_TYPES(o.src.scalar_type(), "edge_dot_cpu_idx", [&] {
      const Edges<scalar_t, index_t> g{o.z.data_ptr<scalar_t>(), o.src.data_ptr<index_t>(),
                                       o.dst.data_ptr<index_t>(), F};
      const auto task = pick_tasks<scalar_t, acc_t, index_t>(F).dot;
      at::parallel_for(0, E, kEdgeGrain,
                       [&](int64_t b, int64_t e_end) { task(g, b, e_end, op + b); });
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
    const BceOut<acc_t> out{o.vec.data_ptr<acc_t>(),
                            static_cast<acc_t>(pos_weight),
                            decode::dlogit_scale<acc_t>(reduction, E),
                            dlogit.data_ptr<acc_t>(),
                            loss_vec.defined() ? loss_vec.data_ptr<acc_t>() : nullptr,
                            partial.data(),
                            E};
    AT_DISPATCH_INDEX_TYPES(o.src.scalar_type(), "edge_bce_cpu_idx", [&] {
      const Edges<scalar_t, index_t> g{o.z.data_ptr<scalar_t>(), o.src.data_ptr<index_t>(),
                                       o.dst.data_ptr<index_t>(), F};
      const auto task = pick_tasks<scalar_t, acc_t, index_t>(F).bce;
      at::parallel_for(0, nblocks, 1, [&](int64_t b0, int64_t b1) {
        std::vector<acc_t> xs(kLossBlock);
        task(g, out, b0, b1, xs.data());
      });
    });
    // Sequential sum of the fixed block partials: the same bits for any thread count.
    double t = 0.0;
    for (int64_t blk = 0; blk < nblocks; ++blk) t += partial[blk];
    if (reduction == Reduction::kMean) t = E > 0 ? t / static_cast<double>(E) : 0.0;
    total.fill_(static_cast<acc_t>(t));
  });
  if (reduction == Reduction::kNone) return {loss_vec, dlogit};
  return {total, dlogit};
}

// With this build's flags GCC fuses a * b + c into one FMA (one rounding instead of two) in the
// AVX2 copies (seen in the disassembly); the gradient sums below must round like the counting
// sort's baseline-ISA axpy.
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

// acc[0..W) += c b[0..W), W = FW > 0 ? FW : F. Elementwise (no reassociation): the same bits
// in every path that applies the same entries in the same order.
template <int FW, typename scalar_t, typename acc_t>
SVG_INLINE void axpy(acc_t* acc, acc_t c, const scalar_t* b, int64_t F) {
  if constexpr (FW > 0 && std::is_same_v<scalar_t, float> && std::is_same_v<acc_t, float>) {
    const v8f cv = vsplat<v8f>(c);
    for (int k = 0; k < FW / 8; ++k)
      vstore(acc + 8 * k, vload<v8f>(acc + 8 * k) + cv * vload<v8f>(b + 8 * k));
  } else {
    decode::axpy_row<scalar_t, acc_t>(acc, c, b, FW > 0 ? FW : F);
  }
}

// Owner scan (acc_t == scalar_t): the owner of rows [lo, hi) applies the entries that update
// them in k order through a small buffer, so the rows it gathers and updates can be prefetched
// kAhead entries ahead. dz comes zero-filled (cpu::mapped_zeros: big ones straight from the
// kernel, no filling pass of ours).
template <int FW, typename scalar_t, typename index_t>
SVG_INLINE void owner_rows(const scalar_t* coef, const scalar_t* z, const index_t* src,
                           const index_t* dst, int64_t E, int64_t lo, int64_t hi, int64_t F,
                           scalar_t* dz) {
  constexpr int kBuf = 512;
  int64_t node[kBuf], other[kBuf];
  scalar_t c[kBuf];
  int m = 0;
  auto flush = [&]() {
    const int pro = std::min<int>(m, kAhead), mid = std::max<int>(0, m - kAhead);
    for (int k = 0; k < pro; ++k) {
      prefetch_row<FW>(z + other[k] * F, F);
      prefetch_row<FW>(dz + node[k] * F, F);
    }
    int k = 0;
    for (; k < mid; ++k) {
      prefetch_row<FW>(z + other[k + kAhead] * F, F);
      prefetch_row<FW>(dz + node[k + kAhead] * F, F);
      axpy<FW, scalar_t, scalar_t>(dz + node[k] * F, c[k], z + other[k] * F, F);
    }
    for (; k < m; ++k) axpy<FW, scalar_t, scalar_t>(dz + node[k] * F, c[k], z + other[k] * F, F);
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

// The owner loop for the baseline ISA and (float) AVX2 + FMA; without FP contraction (above),
// both copies round every product and sum alike: the same bits as the counting sort.
template <int FW, typename scalar_t, typename index_t>
SVG_ATTR_BASE void owner_rows_base(const scalar_t* coef, const scalar_t* z, const index_t* src,
                                   const index_t* dst, int64_t E, int64_t lo, int64_t hi, int64_t F,
                                   scalar_t* dz) {
  owner_rows<FW>(coef, z, src, dst, E, lo, hi, F, dz);
}

#if SVG_CPU_AVX2
template <int FW, typename index_t>
SVG_ATTR_AVX2 void owner_rows_avx2(const float* coef, const float* z, const index_t* src,
                                   const index_t* dst, int64_t E, int64_t lo, int64_t hi, int64_t F,
                                   float* dz) {
  owner_rows<FW>(coef, z, src, dst, E, lo, hi, F, dz);
}
#endif

#pragma GCC pop_options

// Thread t owns rows [n t / T, n (t + 1) / T).
template <int FW, typename scalar_t, typename index_t>
void edge_grad_owner(const scalar_t* coef, const scalar_t* z, const index_t* src,
                     const index_t* dst, int64_t E, int64_t n, int64_t F, int64_t T, scalar_t* dz) {
  auto task = &owner_rows_base<FW, scalar_t, index_t>;
#if SVG_CPU_AVX2
  if constexpr (std::is_same_v<scalar_t, float>) {
    if (cpu::isa() != cpu::Isa::kBase) task = &owner_rows_avx2<FW, index_t>;
  }
#endif
  at::parallel_for(0, T, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) task(coef, z, src, dst, E, n * t / T, n * (t + 1) / T, F, dz);
  });
}

template <typename scalar_t, typename index_t>
void edge_grad_owner_any(const scalar_t* coef, const scalar_t* z, const index_t* src,
                         const index_t* dst, int64_t E, int64_t n, int64_t F, int64_t T,
                         scalar_t* dz) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    return cpu::with_width(
        F, [&](auto w) { edge_grad_owner<decltype(w)::value>(coef, z, src, dst, E, n, F, T, dz); });
  }
  edge_grad_owner<0>(coef, z, src, dst, E, n, F, T, dz);
}

// Whether edge_grad takes the owner scan (which needs dz zero-filled) on T threads.
template <typename scalar_t, typename acc_t>
bool owner_scan(int64_t T) {
  return std::is_same_v<scalar_t, acc_t> && T <= kOwnerMaxThreads;
}

// dz: zero-filled when owner_scan<scalar_t, acc_t>(T), else uninitialized (every row is written).
template <typename scalar_t, typename acc_t, typename index_t>
void edge_grad_kernel(const acc_t* coef, const scalar_t* z, const index_t* src, const index_t* dst,
                      int64_t E, int64_t n, int64_t F, int64_t T, scalar_t* dz) {
  const int64_t M = 2 * E;  // entry k = 2 e + end: end 0 updates src[e], end 1 updates dst[e]
  if constexpr (std::is_same_v<scalar_t, acc_t>) {
    if (owner_scan<scalar_t, acc_t>(T))
      return edge_grad_owner_any<scalar_t, index_t>(coef, z, src, dst, E, n, F, T, dz);
  }
  // Node buckets: at least ~8 contiguous node ranges per thread (balance), at most 2^15 nodes
  // each (the per-bucket counting arrays stay in L2); entry chunks for the first sort level.
  const int64_t per =
      std::max<int64_t>(1, std::min<int64_t>((n + 8 * T - 1) / (8 * T), int64_t(1) << 15));
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
          if (j + kAhead < cntb) prefetch_row<0>(z + ent_other[perm[j + kAhead]] * F, F);
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
  const int64_t T = std::max<int64_t>(1, at::get_num_threads());
  at::Tensor dz;
  const auto dtype = o.z.scalar_type();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "edge_grad_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    dz = owner_scan<scalar_t, acc_t>(T) ? cpu::mapped_zeros({o.n, o.F}, o.z.options())
                                        : at::empty({o.n, o.F}, o.z.options());
    AT_DISPATCH_INDEX_TYPES(o.src.scalar_type(), "edge_grad_cpu_idx", [&] {
      edge_grad_kernel<scalar_t, acc_t, index_t>(
          o.vec.data_ptr<acc_t>(), o.z.data_ptr<scalar_t>(), o.src.data_ptr<index_t>(),
          o.dst.data_ptr<index_t>(), o.E, o.n, o.F, T, dz.data_ptr<scalar_t>());
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
