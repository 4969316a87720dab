// CPU neighbor sampling: per-row sampling in parallel over destination rows (counter-based
// RNG from sample_math.h, so the result does not depend on the number of threads), and the
// relabel step through an open-addressing hash map from global to local node ids.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdlib>
#include <tuple>
#include <vector>

#include "checks.h"
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
  uint64_t slot(int64_t k) const { return (static_cast<uint64_t>(k) * 0x9E3779B97F4A7C15ULL) >> shift_; }
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
                                                  const at::Tensor& nodes, int64_t fanout, bool replace,
                                                  int64_t seed, int64_t hop) {
  check_sample_args(rowptr, col, nodes, "nodes", {fanout});
  auto rp = rowptr.contiguous(), cl = col.contiguous(), nd = nodes.contiguous();
  at::Tensor out_rp, out_col;
  AT_DISPATCH_INDEX_TYPES(rp.scalar_type(), "sample_adj_cpu", [&] {
    auto res = sample_rows<index_t>(rp.data_ptr<index_t>(), cl.data_ptr<index_t>(), nd.data_ptr<int64_t>(),
                                    nd.numel(), fanout, replace, static_cast<uint64_t>(seed), hop);
    out_rp = to_tensor(res.first);
    out_col = to_tensor(res.second);
  });
  return {out_rp, out_col};
}

using SampleResult = std::tuple<at::Tensor, at::Tensor, std::vector<at::Tensor>, std::vector<at::Tensor>>;

template <typename idx_t, typename Map>
SampleResult sample_hops(const idx_t* rp, const idx_t* cl, int64_t num_nodes, const at::Tensor& seeds,
                         at::IntArrayRef fanouts, bool replace, uint64_t seed, Map& map) {
  std::vector<int64_t> n_id(seeds.data_ptr<int64_t>(), seeds.data_ptr<int64_t>() + seeds.numel());
  std::vector<int64_t> hop_ptr{static_cast<int64_t>(n_id.size())};
  std::vector<at::Tensor> rowptrs, cols;
  map.reserve(static_cast<int64_t>(n_id.size()));
  for (size_t i = 0; i < n_id.size(); ++i) map.insert(n_id[i], static_cast<int64_t>(i));
  for (size_t h = 0; h < fanouts.size(); ++h) {
    const int64_t n_dst = static_cast<int64_t>(n_id.size());
    auto res = sample_rows<idx_t>(rp, cl, n_id.data(), n_dst, fanouts[h], replace, seed, static_cast<int64_t>(h));
    const std::vector<int64_t>& g = res.second;
    const int64_t nnz = static_cast<int64_t>(g.size());
    map.reserve(std::min(n_dst + nnz, num_nodes));
    // New nodes of this hop, each once; local ids follow ascending global id.
    std::vector<int64_t> fresh;
    for (int64_t e = 0; e < nnz; ++e)
      if (map.insert(g[e], -2)) fresh.push_back(g[e]);
    std::sort(fresh.begin(), fresh.end());
    for (size_t r = 0; r < fresh.size(); ++r) map.assign(fresh[r], n_dst + static_cast<int64_t>(r));
    n_id.insert(n_id.end(), fresh.begin(), fresh.end());
    hop_ptr.push_back(static_cast<int64_t>(n_id.size()));
    auto local = at::empty({nnz}, at::kLong);
    int64_t* lp = local.data_ptr<int64_t>();
    at::parallel_for(0, nnz, kGrain * 32, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) lp[i] = map.find(g[i]);
    });
    rowptrs.push_back(to_tensor(res.first));
    cols.push_back(local);
  }
  return {to_tensor(n_id), to_tensor(hop_ptr), rowptrs, cols};
}

SampleResult neighbor_sample_cpu(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& seeds,
                                 at::IntArrayRef fanouts, bool replace, int64_t seed) {
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
      out = sample_hops<index_t>(r, c, num_nodes, sd, fanouts, replace, static_cast<uint64_t>(seed), map);
    } else {
      NodeMap map;
      out = sample_hops<index_t>(r, c, num_nodes, sd, fanouts, replace, static_cast<uint64_t>(seed), map);
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
        o[k] = sample::row_has(c, static_cast<int64_t>(r[sp[k]]), static_cast<int64_t>(r[sp[k] + 1]), dp[k]);
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(scalevgae, CPU, m) {
  m.impl("csr_has_pairs", &csr_has_pairs_cpu);
  m.impl("sample_adj", &sample_adj_cpu);
  m.impl("neighbor_sample", &neighbor_sample_cpu);
}

}  // namespace scalevgae
