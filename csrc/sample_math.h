// Per-row neighbor sampling arithmetic shared by the CPU and CUDA kernels (and mirrored in
// torch by scalevgae/ops/reference.py::sample_adj, which the tests compare bit for bit).
//
// Randomness is counter-based: every (sample seed, hop, node) gets its own 32-bit stream key,
// and draw t of that stream is a hash of (key, t). A row's sample therefore depends only on
// (seed, hop, node), never on the thread or block that computes it.
//
// Without replacement a row of degree d <= fanout keeps everything; otherwise it keeps a
// uniformly random k-subset (k = fanout) of its offsets e in [0, d): for k <= kFloydMaxK by
// Floyd's algorithm (step s = 0..k-1, j = d-k+s: t = (draw(key, j) * (j+1)) >> 32, keep t, or j
// if t was already kept), for larger k the k smallest composite ranks (draw(key, e) << 32 | e).
// Kept offsets are returned sorted, so the sampled columns keep the CSR order. With replacement,
// draw t picks offset (draw(key, t) * d) >> 32 for t = 0..fanout-1 (in draw order).
#pragma once

#include <cstdint>

#include "hd.h"

namespace scalevgae {
namespace sample {

// Rows sampling k <= kFloydMaxK of d > k neighbors use Floyd's algorithm, larger k the ranks.
constexpr int64_t kFloydMaxK = 32;

// lowbias32 (C. Wellons): a 32-bit bijective mixer with good avalanche.
SVG_HD inline uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

SVG_HD inline uint32_t stream_key(uint64_t seed, int64_t hop, int64_t node) {
  uint32_t h = mix32(static_cast<uint32_t>(seed) ^ 0x9e3779b9U);
  h = mix32(h ^ static_cast<uint32_t>(seed >> 32));
  h = mix32(h ^ static_cast<uint32_t>(hop));
  h = mix32(h ^ static_cast<uint32_t>(static_cast<uint64_t>(node)));
  h = mix32(h ^ static_cast<uint32_t>(static_cast<uint64_t>(node) >> 32));
  return h;
}

SVG_HD inline uint32_t draw(uint32_t key, int64_t t) {
  return mix32(key ^ mix32(static_cast<uint32_t>(t) + 0x6a09e667U));
}

// Number of sampled entries of a row of degree d (fanout < 0: all).
SVG_HD inline int64_t row_count(int64_t d, int64_t fanout, bool replace) {
  if (fanout < 0) return d;
  if (replace) return d > 0 ? fanout : 0;
  return d < fanout ? d : fanout;
}

SVG_HD inline uint64_t rank_of(uint32_t key, int64_t e) {
  return (static_cast<uint64_t>(draw(key, e)) << 32) |
         static_cast<uint64_t>(static_cast<uint32_t>(e));
}

// Max-heap (by rank) sift-down over offsets h[0..n).
SVG_HD inline void sift_down_rank(int64_t* h, int64_t n, int64_t i, uint32_t key) {
  while (true) {
    int64_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && rank_of(key, h[l]) > rank_of(key, h[m])) m = l;
    if (r < n && rank_of(key, h[r]) > rank_of(key, h[m])) m = r;
    if (m == i) return;
    int64_t t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
}

SVG_HD inline void sift_down_value(int64_t* h, int64_t n, int64_t i) {
  while (true) {
    int64_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && h[l] > h[m]) m = l;
    if (r < n && h[r] > h[m]) m = r;
    if (m == i) return;
    int64_t t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
}

// In-place ascending heapsort of plain values a[0..n).
SVG_HD inline void heapsort_values(int64_t* a, int64_t n) {
  for (int64_t i = n / 2 - 1; i >= 0; --i) sift_down_value(a, n, i);
  for (int64_t end = n - 1; end > 0; --end) {
    int64_t t = a[0];
    a[0] = a[end];
    a[end] = t;
    sift_down_value(a, end, 0);
  }
}

// Writes the row's sampled edge offsets (in [0, d)) to out[0..row_count(d, fanout, replace)).
// `out` is used as the selection heap, so no extra memory is needed.
SVG_HD inline void sample_row(uint32_t key, int64_t d, int64_t fanout, bool replace, int64_t* out) {
  if (fanout < 0 || (!replace && fanout >= d)) {
    for (int64_t e = 0; e < d; ++e) out[e] = e;
    return;
  }
  if (replace) {
    if (d == 0) return;
    for (int64_t t = 0; t < fanout; ++t)
      out[t] = static_cast<int64_t>(
          (static_cast<uint64_t>(draw(key, t)) * static_cast<uint64_t>(d)) >> 32);
    return;
  }
  const int64_t k = fanout;
  if (k == 0) return;
  if (k <= kFloydMaxK) {
    // Floyd's algorithm: O(k^2) with a linear membership scan, independent of d.
    for (int64_t s = 0; s < k; ++s) {
      int64_t j = d - k + s;
      int64_t t = static_cast<int64_t>(
          (static_cast<uint64_t>(draw(key, j)) * static_cast<uint64_t>(j + 1)) >> 32);
      bool seen = false;
      for (int64_t q = 0; q < s; ++q) seen = seen || out[q] == t;
      out[s] = seen ? j : t;
    }
  } else {
    // k smallest ranks through a max-heap kept in out: O(d log k).
    for (int64_t e = 0; e < k; ++e) out[e] = e;
    for (int64_t i = k / 2 - 1; i >= 0; --i) sift_down_rank(out, k, i, key);
    uint64_t top = rank_of(key, out[0]);
    for (int64_t e = k; e < d; ++e) {
      uint64_t r = rank_of(key, e);
      if (r < top) {
        out[0] = e;
        sift_down_rank(out, k, 0, key);
        top = rank_of(key, out[0]);
      }
    }
  }
  heapsort_values(out, k);
}

// Whether the sorted row cl[lo..hi) holds v (binary search).
template <typename idx_t>
SVG_HD inline bool row_has(const idx_t* cl, int64_t lo, int64_t hi, int64_t v) {
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    int64_t c = static_cast<int64_t>(cl[mid]);
    if (c == v) return true;
    if (c < v)
      lo = mid + 1;
    else
      hi = mid;
  }
  return false;
}

}  // namespace sample
}  // namespace scalevgae
