// Arithmetic of the fused GCN propagation (scalevgae::gcn_spmm), shared by the CPU and CUDA
// kernels so that the CPU tests exercise what the GPU runs.
//
//   y[i] = act(dst_scale[i] * (sum_{e in row i} src_scale[col[e]] * x[col[e]]
//                              + [self_loops and i < n_src] src_scale[i] * x[i]) + bias)
// or, with a per-row self weight self_scale (sampled blocks),
//   y[i] = act(dst_scale[i] * sum_{e in row i} src_scale[col[e]] * x[col[e]]
//              + [self_loops and i < n_src] self_scale[i] * x[i] + bias)
//
// Work is split nnz-balanced along the merge path of (row ends, edges) (Merrill & Garland,
// "Merge-based parallel sparse matrix-vector multiplication", SC'16): chunk k covers the path
// diagonals [k*W/C, (k+1)*W/C), W = n_rows + nnz. A chunk finishes the rows whose end lies in
// it; a row cut by chunk boundaries (a hub) leaves raw partial sums (a "tail" in each earlier
// chunk, a "head" in the chunk where it ends) that a fix-up adds in chunk order: no atomics,
// deterministic for a given chunk size, and a 10^5-neighbour row is spread over many chunks.
#pragma once

#include <cstdint>

#include "hd.h"

#if defined(__CUDACC__)
#define SVG_UNROLL _Pragma("unroll")
#elif defined(__GNUC__) && !defined(__clang__)
#define SVG_UNROLL _Pragma("GCC unroll 16")
#else
#define SVG_UNROLL
#endif

namespace scalevgae {
namespace prop {

// A point on the merge path: `row` rows finished, `edge` edges consumed.
struct PathCoord {
  int64_t row;
  int64_t edge;
};

// The point where diagonal `d` (0 <= d <= n_rows + nnz) crosses the merge path of the row-end
// list rowptr[1..n_rows] and the edge list 0..nnz-1 (a row ends after its last edge).
template <typename index_t>
SVG_HD inline PathCoord merge_path_search(int64_t d, const index_t* rowptr, int64_t n_rows,
                                          int64_t nnz) {
  int64_t lo = d > nnz ? d - nnz : 0;
  int64_t hi = d < n_rows ? d : n_rows;
  while (lo < hi) {
    const int64_t mid = (lo + hi) >> 1;
    // Row `mid` ends before edge d - mid - 1 is taken: the path passed that row end.
    if (static_cast<int64_t>(rowptr[mid + 1]) <= d - mid - 1) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return PathCoord{lo, d - lo};
}

// Path diagonal where chunk k starts (chunk_work units per chunk, total work W).
SVG_HD inline int64_t chunk_diagonal(int64_t k, int64_t chunk_work, int64_t work) {
  const int64_t d = k * chunk_work;
  return d < work ? d : work;
}

// Conversion of a stored feature to the accumulation type (c10::Half / BFloat16 convert
// implicitly on host and device).
template <typename acc_t, typename scalar_t>
SVG_HD inline acc_t to_acc(scalar_t v) {
  return static_cast<acc_t>(v);
}

// Weight of source c: src_scale[c], or 1 without scales.
template <typename acc_t, typename index_t>
SVG_HD inline acc_t src_weight(const acc_t* src_scale, index_t c) {
  return src_scale != nullptr ? src_scale[c] : acc_t(1);
}

// acc[0..V) += w * v[0..V): one neighbour's contribution to V consecutive features.
template <int V, typename acc_t>
SVG_HD inline void axpy(acc_t* acc, acc_t w, const acc_t* v) {
  SVG_UNROLL
  for (int j = 0; j < V; ++j) acc[j] += w * v[j];
}

// acc[0..V) += w * x[0..V) read straight from a feature row (the CPU inner loop).
template <int V, typename acc_t, typename scalar_t>
SVG_HD inline void axpy_row(acc_t* acc, acc_t w, const scalar_t* x) {
  SVG_UNROLL
  for (int j = 0; j < V; ++j) acc[j] += w * to_acc<acc_t>(x[j]);
}

// Whether row i gets its self loop (a bipartite block has sources only for i < n_src).
SVG_HD inline bool has_self_loop(bool self_loops, int64_t i, int64_t n_src) {
  return self_loops && i < n_src;
}

// Row i's self loop goes into the sum (weight src_scale[i], scaled by dst_scale[i] with the
// rest: Kipf's D^-1/2 (A + I) D^-1/2) unless a self_scale is given.
template <typename acc_t>
SVG_HD inline bool self_in_sum(bool self_loops, const acc_t* self_scale, int64_t i, int64_t n_src) {
  return self_scale == nullptr && has_self_loop(self_loops, i, n_src);
}

// With a self_scale (sampled blocks) row i's self loop self_scale[i] * x[i] is added after the
// dst scale, as its weight c_i^2 is not dst_scale[i] * src_scale[i] there.
template <typename acc_t>
SVG_HD inline bool self_after_scale(bool self_loops, const acc_t* self_scale, int64_t i,
                                    int64_t n_src) {
  return self_scale != nullptr && has_self_loop(self_loops, i, n_src);
}

// Bias and activation of one output value.
template <typename acc_t>
SVG_HD inline acc_t bias_act(acc_t v, const acc_t* bias, int64_t f, bool relu) {
  if (bias != nullptr) v += bias[f];
  if (relu && v < acc_t(0)) v = acc_t(0);  // NaN stays NaN, as torch.relu
  return v;
}

// Epilogue of feature f of row i: dst scale, bias, activation.
template <typename acc_t>
SVG_HD inline acc_t finish(acc_t v, const acc_t* dst_scale, int64_t i, const acc_t* bias, int64_t f,
                           bool relu) {
  if (dst_scale != nullptr) v *= dst_scale[i];
  return bias_act(v, bias, f, relu);
}

// Epilogue with the self term after the dst scale: v * dst_scale[i] + w_self * x_self, bias,
// activation (w_self = self_scale[i], x_self = x[i][f]).
template <typename acc_t>
SVG_HD inline acc_t finish_self(acc_t v, const acc_t* dst_scale, int64_t i, acc_t w_self,
                                acc_t x_self, const acc_t* bias, int64_t f, bool relu) {
  if (dst_scale != nullptr) v *= dst_scale[i];
  v += w_self * x_self;
  return bias_act(v, bias, f, relu);
}

// Chunk k of the merge path and its cut rows.
struct ChunkInfo {
  int64_t row_begin;   // first row whose end lies in the chunk
  int64_t row_end;     // one past the last such row
  int64_t edge_begin;  // first edge of the chunk
  int64_t edge_end;    // one past its last edge
  int64_t head_row;    // row_begin if it started in an earlier chunk (partial here), else -1
  int64_t tail_row;    // row_end if the chunk holds some of its edges but not its end, else -1
};

// The chunk between path points a (its start) and b (its end).
template <typename index_t>
SVG_HD inline ChunkInfo chunk_between(PathCoord a, PathCoord b, const index_t* rowptr,
                                      int64_t n_rows) {
  ChunkInfo c;
  c.row_begin = a.row;
  c.row_end = b.row;
  c.edge_begin = a.edge;
  c.edge_end = b.edge;
  c.head_row = (a.row < b.row && static_cast<int64_t>(rowptr[a.row]) < a.edge) ? a.row : -1;
  int64_t tail_start = a.edge;
  if (b.row<n_rows&& static_cast<int64_t>(rowptr[b.row])> tail_start) {
    tail_start = rowptr[b.row];
  }
  c.tail_row = (b.row < n_rows && b.edge > tail_start) ? b.row : -1;
  return c;
}

// Chunk k of the merge path (chunk_work units each).
template <typename index_t>
SVG_HD inline ChunkInfo chunk_info(int64_t k, int64_t chunk_work, const index_t* rowptr,
                                   int64_t n_rows, int64_t nnz) {
  const int64_t work = n_rows + nnz;
  const PathCoord a = merge_path_search(chunk_diagonal(k, chunk_work, work), rowptr, n_rows, nnz);
  const PathCoord b =
      merge_path_search(chunk_diagonal(k + 1, chunk_work, work), rowptr, n_rows, nnz);
  return chunk_between(a, b, rowptr, n_rows);
}

// First edge of row i inside a chunk starting at edge e0.
template <typename index_t>
SVG_HD inline int64_t row_first_edge(const index_t* rowptr, int64_t i, int64_t e0) {
  const int64_t s = rowptr[i];
  return s > e0 ? s : e0;
}

// First chunk of the run of chunks before `k` whose tail partial belongs to row r (the chunk
// where r ends owns it as its head): the fix-up sums tails[first..k) and then head[k].
SVG_HD inline int64_t first_tail_chunk(int64_t k, int64_t r, const int64_t* tail_rows) {
  int64_t j = k;
  while (j > 0 && tail_rows[j - 1] == r) --j;
  return j;
}

// Number of chunks for a given work and chunk size.
SVG_HD inline int64_t num_chunks(int64_t work, int64_t chunk_work) {
  return work == 0 ? 0 : (work + chunk_work - 1) / chunk_work;
}

}  // namespace prop
}  // namespace scalevgae
