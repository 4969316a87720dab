// CPU neighbor sampling: per-row sampling in parallel over destination rows (counter-based
// RNG from sample_math.h, so the result does not depend on the number of threads), the relabel
// step through an open-addressing hash map from global to local node ids, and the input layer's
// sample fused with its aggregation (sample_aggregate).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdlib>
#include <tuple>
#include <utility>
#include <vector>

#include "checks.h"
#include "cpu/isa.h"
#include "cpu/prefetch.h"
#include "cpu/recycled_buffer.h"
#include "cpu/width.h"
#include "propagate_math.h"
#include "sample_math.h"

namespace scalevgae {
namespace {

// Grains are large on purpose: each parallel region ends in a barrier that costs a whole time
// slice when another thread holds the core, so small samples run serially.
constexpr int64_t kGrain = 2048;

// Global id -> local id, linear probing, keys >= 0 (empty slot: -1). Lookups are read-only
// and safe to run in parallel; inserts are sequential.
class NodeMap {
 public:
  void reserve(int64_t n) {
    int64_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    if (cap <= static_cast<int64_t>(keys_.size())) return;
    std::vector<int64_t> old_k = std::move(keys_), old_v = std::move(vals_);
    keys_.assign(cap, -1);
    vals_.assign(cap, -1);
    mask_ = static_cast<uint64_t>(cap - 1);
    shift_ = 64;
    for (int64_t c = cap; c > 1; c >>= 1) --shift_;
    for (size_t i = 0; i < old_k.size(); ++i)
      if (old_k[i] >= 0) insert(old_k[i], old_v[i]);
  }
  void prefetch(int64_t k) const { __builtin_prefetch(keys_.data() + slot(k), 1, 3); }
  int64_t find(int64_t k) const {
    for (uint64_t s = slot(k);; s = (s + 1) & mask_) {
      if (keys_[s] == k) return vals_[s];
      if (keys_[s] < 0) return -1;
    }
  }
  // Inserts k -> v if k is absent; returns whether it was inserted.
  bool insert(int64_t k, int64_t v) {
    for (uint64_t s = slot(k);; s = (s + 1) & mask_) {
      if (keys_[s] == k) return false;
      if (keys_[s] < 0) {
        keys_[s] = k;
        vals_[s] = v;
        return true;
      }
    }
  }
  void assign(int64_t k, int64_t v) {
    for (uint64_t s = slot(k);; s = (s + 1) & mask_)
      if (keys_[s] == k) {
        vals_[s] = v;
        return;
      }
  }

 private:
  // Fibonacci hashing: the top bits of k * 2^64/phi.
  uint64_t slot(int64_t k) const {
    return (static_cast<uint64_t>(k) * 0x9E3779B97F4A7C15ULL) >> shift_;
  }
  std::vector<int64_t> keys_, vals_;
  uint64_t mask_ = 0;
  int shift_ = 64;
};

// Global id -> local id through a per-thread int32 array over all nodes (-1: absent), reused
// across calls; only the entries a call touched are reset, so a call costs O(sample), not O(N).
class DenseMap {
 public:
  explicit DenseMap(int64_t num_nodes) : a_(storage()) {
    if (static_cast<int64_t>(a_.size()) < num_nodes) a_.resize(num_nodes, -1);
  }
  ~DenseMap() {
    for (int64_t k : touched_) a_[k] = -1;
  }
  void reserve(int64_t) {}
  void prefetch(int64_t k) const { __builtin_prefetch(a_.data() + k, 1, 3); }
  int64_t find(int64_t k) const { return a_[k]; }
  bool insert(int64_t k, int64_t v) {
    if (a_[k] != -1) return false;
    a_[k] = static_cast<int32_t>(v);
    touched_.push_back(k);
    return true;
  }
  void assign(int64_t k, int64_t v) { a_[k] = static_cast<int32_t>(v); }

 private:
  static std::vector<int32_t>& storage() {
    static thread_local std::vector<int32_t> a;
    return a;
  }
  std::vector<int32_t>& a_;
  std::vector<int64_t> touched_;
};

// Dense maps up to this many nodes (4 bytes per node, kept per calling thread; local ids of such
// a graph fit int32); hash maps above.
constexpr int64_t kDenseMaxNodes = int64_t(1) << 25;

// Rows ahead whose CSR entries are prefetched: the rows of a hop are scattered over the graph, so
// every row costs a cache (and TLB) miss on rowptr and another on col; issuing them early lets
// the misses of several rows overlap.
constexpr int64_t kRowPrefetch = 16;
// Entries ahead whose map slot is prefetched while relabelling a hop: the sampled ids are
// random over the graph, so each lookup misses (the dense map of 10^7 nodes is 40 MB).
constexpr int64_t kMapAhead = 16;

// Sorts ids in [0, bound) ascending: an LSD radix sort with digits of at most 11 bits (a 16 KB
// histogram) and as few passes as the bound needs. A hop's new ids (~1.5e5 at 10^6 nodes) took
// std::sort ~9 ms, half the hop.
void sort_ids(std::vector<int64_t>& v, int64_t bound) {
  if (v.size() < 1024) {
    std::sort(v.begin(), v.end());
    return;
  }
  const int bits = 64 - __builtin_clzll(static_cast<uint64_t>(std::max<int64_t>(bound - 1, 1)));
  const int passes = (bits + 10) / 11;
  const int digit = (bits + passes - 1) / passes;
  const uint64_t mask = (uint64_t(1) << digit) - 1;
  std::vector<int64_t> tmp(v.size()), count(size_t(1) << digit);
  for (int p = 0; p < passes; ++p) {
    const int shift = p * digit;
    std::fill(count.begin(), count.end(), 0);
    for (int64_t x : v) ++count[(static_cast<uint64_t>(x) >> shift) & mask];
    int64_t sum = 0;
    for (int64_t& c : count) sum += std::exchange(c, sum);
    for (int64_t x : v) tmp[count[(static_cast<uint64_t>(x) >> shift) & mask]++] = x;
    v.swap(tmp);
  }
}

// Samples the rows of `nodes` (global ids); returns the CSR of the sample with global columns.
template <typename idx_t>
std::pair<std::vector<int64_t>, std::vector<int64_t>> sample_rows(const idx_t* rp, const idx_t* cl,
                                                                  const int64_t* nodes, int64_t n,
                                                                  int64_t fanout, bool replace,
                                                                  uint64_t seed, int64_t hop) {
  std::vector<int64_t> out_rp(n + 1, 0);
  at::parallel_for(0, n, kGrain * 8, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      if (i + kRowPrefetch < e) __builtin_prefetch(rp + nodes[i + kRowPrefetch], 0, 3);
      int64_t v = nodes[i];
      out_rp[i + 1] = sample::row_count(static_cast<int64_t>(rp[v + 1] - rp[v]), fanout, replace);
    }
  });
  for (int64_t i = 0; i < n; ++i) out_rp[i + 1] += out_rp[i];
  std::vector<int64_t> out(out_rp[n]);
  at::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      if (i + kRowPrefetch < e) {
        // rowptr of this row was read by the counting pass (likely still cached); its first
        // sampled column is somewhere in [rp[v], rp[v+1]): fetch the row's start.
        __builtin_prefetch(cl + rp[nodes[i + kRowPrefetch]], 0, 3);
      }
      int64_t v = nodes[i];
      int64_t base = static_cast<int64_t>(rp[v]);
      int64_t d = static_cast<int64_t>(rp[v + 1]) - base;
      int64_t* o = out.data() + out_rp[i];
      int64_t cnt = out_rp[i + 1] - out_rp[i];
      sample::sample_row(sample::stream_key(seed, hop, v), d, fanout, replace, o);
      for (int64_t j = 0; j < cnt; ++j) o[j] = static_cast<int64_t>(cl[base + o[j]]);
    }
  });
  return {std::move(out_rp), std::move(out)};
}

at::Tensor to_tensor(const std::vector<int64_t>& v) {
  auto t = at::empty({static_cast<int64_t>(v.size())}, at::kLong);
  std::copy(v.begin(), v.end(), t.data_ptr<int64_t>());
  return t;
}

std::tuple<at::Tensor, at::Tensor> sample_adj_cpu(const at::Tensor& rowptr, const at::Tensor& col,
                                                  const at::Tensor& nodes, int64_t fanout,
                                                  bool replace, int64_t seed, int64_t hop) {
  check_sample_args(rowptr, col, nodes, "nodes", {fanout});
  auto rp = rowptr.contiguous(), cl = col.contiguous(), nd = nodes.contiguous();
  at::Tensor out_rp, out_col;
  AT_DISPATCH_INDEX_TYPES(rp.scalar_type(), "sample_adj_cpu", [&] {
    auto res =
        sample_rows<index_t>(rp.data_ptr<index_t>(), cl.data_ptr<index_t>(), nd.data_ptr<int64_t>(),
                             nd.numel(), fanout, replace, static_cast<uint64_t>(seed), hop);
    out_rp = to_tensor(res.first);
    out_col = to_tensor(res.second);
  });
  return {out_rp, out_col};
}

using SampleResult =
    std::tuple<at::Tensor, at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>>;

template <typename idx_t, typename Map>
SampleResult sample_hops(const idx_t* rp, const idx_t* cl, int64_t num_nodes,
                         const at::Tensor& seeds, at::IntArrayRef fanouts, bool replace,
                         uint64_t seed, Map& map) {
  std::vector<int64_t> n_id(seeds.data_ptr<int64_t>(), seeds.data_ptr<int64_t>() + seeds.numel());
  std::vector<int64_t> hop_ptr{static_cast<int64_t>(n_id.size())};
  std::vector<at::Tensor> rowptrs, cols;
  map.reserve(static_cast<int64_t>(n_id.size()));
  for (size_t i = 0; i < n_id.size(); ++i) map.insert(n_id[i], static_cast<int64_t>(i));
  for (size_t h = 0; h < fanouts.size(); ++h) {
    const int64_t n_dst = static_cast<int64_t>(n_id.size());
    auto res = sample_rows<idx_t>(rp, cl, n_id.data(), n_dst, fanouts[h], replace, seed,
                                  static_cast<int64_t>(h));
    const std::vector<int64_t>& g = res.second;
    const int64_t nnz = static_cast<int64_t>(g.size());
    map.reserve(std::min(n_dst + nnz, num_nodes));
    // New nodes of this hop, each once; local ids follow ascending global id.
    std::vector<int64_t> fresh;
    for (int64_t e = 0; e < nnz; ++e) {
      if (e + kMapAhead < nnz) map.prefetch(g[e + kMapAhead]);
      if (map.insert(g[e], -2)) fresh.push_back(g[e]);
    }
    sort_ids(fresh, num_nodes);
    for (size_t r = 0; r < fresh.size(); ++r) map.assign(fresh[r], n_dst + static_cast<int64_t>(r));
    n_id.insert(n_id.end(), fresh.begin(), fresh.end());
    hop_ptr.push_back(static_cast<int64_t>(n_id.size()));
    auto local = at::empty({nnz}, at::kLong);
    int64_t* lp = local.data_ptr<int64_t>();
    at::parallel_for(0, nnz, kGrain * 32, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        if (i + kMapAhead < e) map.prefetch(g[i + kMapAhead]);
        lp[i] = map.find(g[i]);
      }
    });
    rowptrs.push_back(to_tensor(res.first));
    cols.push_back(local);
  }
  return {to_tensor(n_id), to_tensor(hop_ptr), rowptrs, cols};
}

SampleResult neighbor_sample_cpu(const at::Tensor& rowptr, const at::Tensor& col,
                                 const at::Tensor& seeds, at::IntArrayRef fanouts, bool replace,
                                 int64_t seed) {
  check_sample_args(rowptr, col, seeds, "seeds", fanouts, "fanouts");
  auto rp = rowptr.contiguous(), cl = col.contiguous(), sd = seeds.contiguous();
  const int64_t num_nodes = rp.numel() - 1;
  SampleResult out;
  AT_DISPATCH_INDEX_TYPES(rp.scalar_type(), "neighbor_sample_cpu", [&] {
    const index_t* r = rp.data_ptr<index_t>();
    const index_t* c = cl.data_ptr<index_t>();
    // SCALEVGAE_SAMPLE_HASHMAP=1 forces the hash map (tests cover both paths).
    const char* force_hash = std::getenv("SCALEVGAE_SAMPLE_HASHMAP");
    if (num_nodes <= kDenseMaxNodes && !(force_hash && force_hash[0] == '1')) {
      DenseMap map(num_nodes);
      out = sample_hops<index_t>(r, c, num_nodes, sd, fanouts, replace, static_cast<uint64_t>(seed),
                                 map);
    } else {
      NodeMap map;
      out = sample_hops<index_t>(r, c, num_nodes, sd, fanouts, replace, static_cast<uint64_t>(seed),
                                 map);
    }
  });
  return out;
}

at::Tensor csr_has_pairs_cpu(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& src,
                             const at::Tensor& dst) {
  check_has_pairs_args(rowptr, col, src, dst);
  auto rp = rowptr.contiguous(), cl = col.contiguous(), s = src.contiguous(), d = dst.contiguous();
  auto out = at::empty({s.numel()}, s.options().dtype(at::kBool));
  bool* o = out.data_ptr<bool>();
  const int64_t* sp = s.data_ptr<int64_t>();
  const int64_t* dp = d.data_ptr<int64_t>();
  AT_DISPATCH_INDEX_TYPES(rp.scalar_type(), "csr_has_pairs_cpu", [&] {
    const index_t* r = rp.data_ptr<index_t>();
    const index_t* c = cl.data_ptr<index_t>();
    at::parallel_for(0, s.numel(), kGrain * 16, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k)
        o[k] = sample::row_has(c, static_cast<int64_t>(r[sp[k]]),
                               static_cast<int64_t>(r[sp[k] + 1]), dp[k]);
    });
  });
  return out;
}

// ---- sample_aggregate: the input layer's sample and aggregation in one pass ----
//
// Each row costs a chain of dependent cache misses scattered over the whole graph: nodes[i] ->
// rowptr[v] -> col[rowptr[v]..] -> the sampled neighbours' x rows and norms (plus x[v], norm[v]).
// Rows are software-pipelined so the misses of several rows overlap: rowptr kRpAhead rows ahead,
// the first col line and the own row kColAhead ahead, and the sample itself kSampleAhead ahead
// (into a small ring), which then prefetches its neighbours' rows; row i is summed last. The
// per-row sum runs in a fixed order, so the result does not depend on the number of threads.
// The kernel is bound by the lines in flight, not by these distances: 4/10/20 and 8/16/32 measured
// the same (10^6 nodes, F = 64: 1.3x the unfused sample_adj + gcn_spmm + self-term gather).
constexpr int64_t kRpAhead = 20;
constexpr int64_t kColAhead = 10;
constexpr int64_t kSampleAhead = 4;
constexpr int64_t kRing = kSampleAhead + 1;
// Entries ahead whose rows are prefetched inside a row that keeps every neighbour (fanout -1 or
// degree <= fanout; a hub can have many).
constexpr int64_t kAllAhead = 8;

template <typename scalar_t, typename acc_t, typename idx_t>
struct AggArgs {
  const idx_t* rp;
  const idx_t* cl;
  const int64_t* nodes;
  const scalar_t* x;
  const acc_t* norm;
  scalar_t* y;
  int64_t n, F, fanout;
  bool replace;
  uint64_t seed;
  int64_t hop;
  int64_t row_span;  // bytes of an x row to prefetch (see prefetch_x_row)
};

// One row's sample: the global ids of its sampled neighbours (cols[0..k)), or, when it keeps
// every neighbour (`all`), the CSR range cl[base, base + d) read in place.
struct RowSample {
  int64_t v, base, d, k;
  bool all;
  int64_t* cols;  // [max(fanout, 1)] of the ring
};

using cpu::prefetch;  // cpu/prefetch.h; the asm form, as some calls are conditional

// x's row u (every line of it, into L2) and norm[u]. The kernel is bound by how many lines are in
// flight (the prefetch instruction itself stalls when the miss buffers are full), so no line more
// than the row's: rows_span is the row's bytes when rows start on 64-byte lines, else one line
// more.
template <typename scalar_t, typename acc_t, typename idx_t>
inline void prefetch_x_row(const AggArgs<scalar_t, acc_t, idx_t>& a, int64_t u) {
  const char* lo = reinterpret_cast<const char*>(a.x + u * a.F);
  for (int64_t off = 0; off < a.row_span; off += 64) prefetch<false, true>(lo + off);
  prefetch<false, true>(a.norm + u);
}

// Samples row i into s and prefetches the x rows it will sum (the first kAllAhead of a row kept
// whole).
template <typename scalar_t, typename acc_t, typename idx_t>
inline void sample_into(const AggArgs<scalar_t, acc_t, idx_t>& a, int64_t i, RowSample& s) {
  s.v = a.nodes[i];
  s.base = static_cast<int64_t>(a.rp[s.v]);
  s.d = static_cast<int64_t>(a.rp[s.v + 1]) - s.base;
  s.k = sample::row_count(s.d, a.fanout, a.replace);
  s.all = a.fanout < 0 || (!a.replace && a.fanout >= s.d);
  if (s.all) {
    const int64_t m = std::min(s.d, kAllAhead);
    for (int64_t j = 0; j < m; ++j) prefetch_x_row(a, static_cast<int64_t>(a.cl[s.base + j]));
    return;
  }
  sample::sample_row(sample::stream_key(a.seed, a.hop, s.v), s.d, a.fanout, a.replace, s.cols);
  for (int64_t j = 0; j < s.k; ++j) {
    s.cols[j] = static_cast<int64_t>(a.cl[s.base + s.cols[j]]);
    prefetch_x_row(a, s.cols[j]);
  }
}

// acc[0..F) += w * x[u] (FB > 0: F == FB known at compile time, accumulators in registers).
template <int FB, typename scalar_t, typename acc_t, typename idx_t>
inline void add_row(acc_t* __restrict acc, const AggArgs<scalar_t, acc_t, idx_t>& a, int64_t u) {
  const acc_t w = a.norm[u];
  const scalar_t* __restrict xr = a.x + u * a.F;
  if constexpr (FB > 0) {
    prop::axpy_row<FB>(acc, w, xr);
  } else {
    for (int64_t f = 0; f < a.F; ++f) acc[f] += w * prop::to_acc<acc_t>(xr[f]);
  }
}

// y[i] = c_v^2 x[v] + c_v (d / k) sum_{u in S_i} c_u x[u].
template <int FB, typename scalar_t, typename acc_t, typename idx_t>
inline void sum_row(const AggArgs<scalar_t, acc_t, idx_t>& a, int64_t i, const RowSample& s,
                    acc_t* __restrict acc) {
  const int64_t F = FB > 0 ? FB : a.F;
  for (int64_t f = 0; f < F; ++f) acc[f] = acc_t(0);
  if (s.all) {
    for (int64_t j = 0; j < s.d; ++j) {
      if (j + kAllAhead < s.d)
        prefetch_x_row(a, static_cast<int64_t>(a.cl[s.base + j + kAllAhead]));
      add_row<FB>(acc, a, static_cast<int64_t>(a.cl[s.base + j]));
    }
  } else {
    for (int64_t j = 0; j < s.k; ++j) add_row<FB>(acc, a, s.cols[j]);
  }
  const acc_t c = a.norm[s.v];
  const acc_t self = c * c;
  const acc_t scale = s.k > 0 ? c * (static_cast<acc_t>(s.d) / static_cast<acc_t>(s.k)) : c;
  const scalar_t* __restrict xv = a.x + s.v * a.F;
  scalar_t* __restrict yr = a.y + i * a.F;
  for (int64_t f = 0; f < F; ++f)
    yr[f] = static_cast<scalar_t>(self * prop::to_acc<acc_t>(xv[f]) + scale * acc[f]);
}

// Fanout 0 keeps no neighbour: y[i] = c_v^2 x[v], a scaled gather of rows (with unit norms the
// rows themselves: the loader's precomputed input, sampling/aggregated.py). Only x[v] and
// norm[v] are read, kColAhead rows ahead; the pipeline's rowptr and col reads would only take
// lines in flight (it ran this gather 2.3x slower than index_select at 10^6 nodes).
template <int FB, typename scalar_t, typename acc_t, typename idx_t>
inline void self_rows(const AggArgs<scalar_t, acc_t, idx_t>& a, int64_t b, int64_t e) {
  const int64_t F = FB > 0 ? FB : a.F;
  for (int64_t i = b; i < e; ++i) {
    if (i + kColAhead < e) prefetch_x_row(a, a.nodes[i + kColAhead]);
    const int64_t v = a.nodes[i];
    const acc_t c = a.norm[v];
    const acc_t self = c * c;
    const scalar_t* __restrict xv = a.x + v * a.F;
    scalar_t* __restrict yr = a.y + i * a.F;
    for (int64_t f = 0; f < F; ++f)
      yr[f] = static_cast<scalar_t>(self * prop::to_acc<acc_t>(xv[f]));
  }
}

// Rows [b, e) through the pipeline; ring [kRing * max(fanout, 1)], scratch [F].
template <int FB, typename scalar_t, typename acc_t, typename idx_t>
inline void aggregate_rows(const AggArgs<scalar_t, acc_t, idx_t>& a, int64_t b, int64_t e,
                           int64_t* ring, acc_t* scratch) {
  if (a.fanout == 0) {
    self_rows<FB>(a, b, e);
    return;
  }
  const int64_t cap = std::max<int64_t>(a.fanout, 1);
  RowSample slot[kRing];
  for (int64_t r = 0; r < kRing; ++r) slot[r].cols = ring + r * cap;
  for (int64_t j = b; j < std::min(b + kSampleAhead, e); ++j) sample_into(a, j, slot[j % kRing]);
  acc_t regs[FB > 0 ? FB : 1];  // FB > 0: the accumulators, in registers
  for (int64_t i = b; i < e; ++i) {
    if (i + kRpAhead < e) prefetch<true, true>(a.rp + a.nodes[i + kRpAhead]);
    if (i + kColAhead < e) {
      // The row's first and last col lines (an average row spans one or two).
      const int64_t v = a.nodes[i + kColAhead];
      const int64_t lo = static_cast<int64_t>(a.rp[v]), hi = static_cast<int64_t>(a.rp[v + 1]);
      prefetch<true, true>(a.cl + lo);
      if (hi > lo) prefetch<true, true>(a.cl + hi - 1);
      prefetch_x_row(a, v);
    }
    if (i + kSampleAhead < e) sample_into(a, i + kSampleAhead, slot[(i + kSampleAhead) % kRing]);
    if constexpr (FB > 0) {
      sum_row<FB>(a, i, slot[i % kRing], regs);
    } else {
      sum_row<FB>(a, i, slot[i % kRing], scratch);
    }
  }
}

// Compiled for the baseline ISA and for AVX2+FMA (cpu/isa.h).
template <int FB, typename scalar_t, typename acc_t, typename idx_t>
SVG_ATTR_AVX2 void aggregate_rows_avx2(const AggArgs<scalar_t, acc_t, idx_t>& a, int64_t b,
                                       int64_t e, int64_t* ring, acc_t* scratch) {
  aggregate_rows<FB>(a, b, e, ring, scratch);
}

template <int FB, typename scalar_t, typename acc_t, typename idx_t>
SVG_ATTR_BASE void aggregate_rows_base(const AggArgs<scalar_t, acc_t, idx_t>& a, int64_t b,
                                       int64_t e, int64_t* ring, acc_t* scratch) {
  aggregate_rows<FB>(a, b, e, ring, scratch);
}

template <int FB, typename scalar_t, typename acc_t, typename idx_t>
void aggregate_all(const AggArgs<scalar_t, acc_t, idx_t>& a) {
  const bool use_avx2 = cpu::isa() != cpu::Isa::kBase;
  at::parallel_for(0, a.n, kGrain, [&](int64_t b, int64_t e) {
    std::vector<int64_t> ring(kRing * std::max<int64_t>(a.fanout, 1));
    std::vector<acc_t> scratch(a.F);
    if (use_avx2) {
      aggregate_rows_avx2<FB>(a, b, e, ring.data(), scratch.data());
    } else {
      aggregate_rows_base<FB>(a, b, e, ring.data(), scratch.data());
    }
  });
}

// Bytes of a row of x (F features) that prefetch_x_row covers.
template <typename scalar_t>
int64_t row_span(const scalar_t* x, int64_t F) {
  const int64_t bytes = F * static_cast<int64_t>(sizeof(scalar_t));
  return cpu::prefetch_span(bytes, cpu::rows_on_lines(x, bytes));
}

at::Tensor sample_aggregate_cpu(const at::Tensor& rowptr, const at::Tensor& col,
                                const at::Tensor& nodes, const at::Tensor& x,
                                const at::Tensor& norm, int64_t fanout, bool replace, int64_t seed,
                                int64_t hop) {
  check_sample_aggregate_args(rowptr, col, nodes, x, norm, fanout);
  auto rp = rowptr.contiguous(), cl = col.contiguous(), nd = nodes.contiguous();
  auto xc = x.contiguous(), nm = norm.contiguous();
  // One output per batch, freed by the training thread: recycled (see recycled_buffer.h).
  auto y = cpu::recycled_buffers().empty({nd.numel(), xc.size(1)}, xc.options());
  if (y.numel() == 0) return y;
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, xc.scalar_type(), "sample_aggregate_cpu", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        AT_DISPATCH_INDEX_TYPES(rp.scalar_type(), "sample_aggregate_cpu_index", [&] {
          const AggArgs<scalar_t, acc_t, index_t> a{rp.data_ptr<index_t>(),
                                                    cl.data_ptr<index_t>(),
                                                    nd.data_ptr<int64_t>(),
                                                    xc.data_ptr<scalar_t>(),
                                                    nm.data_ptr<acc_t>(),
                                                    y.data_ptr<scalar_t>(),
                                                    nd.numel(),
                                                    xc.size(1),
                                                    fanout,
                                                    replace,
                                                    static_cast<uint64_t>(seed),
                                                    hop,
                                                    row_span(xc.data_ptr<scalar_t>(), xc.size(1))};
          cpu::with_width(a.F, [&](auto w) { aggregate_all<decltype(w)::value>(a); });
        });
      });
  return y;
}

}  // namespace

TORCH_LIBRARY_IMPL(scalevgae, CPU, m) {
  m.impl("csr_has_pairs", &csr_has_pairs_cpu);
  m.impl("sample_adj", &sample_adj_cpu);
  m.impl("sample_aggregate", &sample_aggregate_cpu);
  m.impl("neighbor_sample", &neighbor_sample_cpu);
}

}  // namespace scalevgae
