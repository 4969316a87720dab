// Argument checks shared by every backend. Cheap metadata checks only (dtype, rank, device,
// lengths); value checks that cost O(nnz) (index ranges, monotone rowptr) run once at the
// Python boundary (scalevgae/ops/validate.py), not in kernels.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <algorithm>

namespace scalevgae {

inline void check_index_1d(const at::Tensor& t, const char* name) {
  TORCH_CHECK_TYPE(t.scalar_type() == at::kInt || t.scalar_type() == at::kLong, name,
                   " must be int32 or int64, got ", t.scalar_type());
  TORCH_CHECK_VALUE(t.dim() == 1, name, " must be 1-D, got shape ", t.sizes());
}

inline void check_floating(const at::Tensor& t, const char* name) {
  TORCH_CHECK_TYPE(at::isFloatingType(t.scalar_type()), name,
                   " must be a floating-point tensor, got ", t.scalar_type());
}

inline void check_same_device(const at::Tensor& a, const char* a_name, const at::Tensor& b,
                              const char* b_name) {
  TORCH_CHECK_VALUE(a.device() == b.device(), a_name, " is on ", a.device(), " but ", b_name,
                    " is on ", b.device());
}

inline void check_same_dtype(const at::Tensor& a, const char* a_name, const at::Tensor& b,
                             const char* b_name) {
  TORCH_CHECK_TYPE(a.scalar_type() == b.scalar_type(), a_name, " is ", a.scalar_type(), " but ",
                   b_name, " is ", b.scalar_type());
}

inline void check_length(const at::Tensor& t, int64_t n, const char* name, const char* what) {
  TORCH_CHECK_VALUE(t.dim() == 1 && t.size(0) == n, name, " must have shape [", n, "] (", what,
                    "), got ", t.sizes());
}

// Accumulation dtype of a feature dtype: float for half/bfloat16/float, double for double.
inline at::ScalarType acc_dtype(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

// Checks for an optional per-node vector used as a scale/bias; it must already be in the
// accumulation dtype (the Python wrapper casts it).
inline void check_opt_vector(const c10::optional<at::Tensor>& t, int64_t n, at::ScalarType acc,
                             const at::Tensor& like, const char* name, const char* what) {
  if (!t.has_value()) return;
  check_length(*t, n, name, what);
  TORCH_CHECK_TYPE(t->scalar_type() == acc, name, " must be ", acc, ", got ", t->scalar_type());
  check_same_device(*t, name, like, "x");
}

// ---- per-op argument checks, shared by the CPU and CUDA kernels ----

// gcn_spmm: rowptr [R+1] / col [nnz] of one int dtype, x [C, F] floating, optional dst_scale [R],
// src_scale [C], bias [F], self_scale [min(R, C)] (only with self_loops) in the accumulation
// dtype, all on x's device.
inline void check_gcn_spmm_args(const at::Tensor& rowptr, const at::Tensor& col,
                                const at::Tensor& x, const c10::optional<at::Tensor>& dst_scale,
                                const c10::optional<at::Tensor>& src_scale,
                                const c10::optional<at::Tensor>& bias, bool self_loops,
                                const c10::optional<at::Tensor>& self_scale) {
  check_index_1d(rowptr, "rowptr");
  check_index_1d(col, "col");
  check_same_dtype(rowptr, "rowptr", col, "col");
  check_floating(x, "x");
  TORCH_CHECK_VALUE(x.dim() == 2, "x must be 2-D, got shape ", x.sizes());
  TORCH_CHECK_VALUE(rowptr.numel() >= 1, "rowptr must have at least one entry");
  check_same_device(rowptr, "rowptr", x, "x");
  check_same_device(col, "col", x, "x");
  const at::ScalarType acc = acc_dtype(x.scalar_type());
  check_opt_vector(dst_scale, rowptr.numel() - 1, acc, x, "dst_scale", "rowptr.numel() - 1");
  check_opt_vector(src_scale, x.size(0), acc, x, "src_scale", "x.size(0)");
  check_opt_vector(bias, x.size(1), acc, x, "bias", "x.size(1)");
  TORCH_CHECK_VALUE(self_loops || !self_scale.has_value(), "self_scale needs self_loops=True");
  check_opt_vector(self_scale, std::min<int64_t>(rowptr.numel() - 1, x.size(0)), acc, x,
                   "self_scale", "min(rowptr.numel() - 1, x.size(0))");
}

// Edge ops: z [n, F] floating, src/dst [E] of one int dtype, all on z's device.
inline void check_edge_args(const at::Tensor& z, const at::Tensor& src, const at::Tensor& dst) {
  check_floating(z, "z");
  TORCH_CHECK_VALUE(z.dim() == 2, "z must be 2-D [n, F], got shape ", z.sizes());
  check_index_1d(src, "src");
  check_index_1d(dst, "dst");
  check_same_dtype(src, "src", dst, "dst");
  check_length(dst, src.size(0), "dst", "src.size(0)");
  check_same_device(z, "z", src, "src");
  check_same_device(z, "z", dst, "dst");
}

// all_pairs_softplus: z [N, F] floating.
inline void check_all_pairs_args(const at::Tensor& z) {
  check_floating(z, "z");
  TORCH_CHECK_VALUE(z.dim() == 2, "z must be 2-D [N, F], got shape ", z.sizes());
}

// A per-edge vector (label, coef) of an edge op: [E] in z's accumulation dtype, on z's device.
inline void check_edge_vector(const at::Tensor& t, const at::Tensor& z, const at::Tensor& src,
                              const char* name) {
  const at::ScalarType acc = acc_dtype(z.scalar_type());
  check_length(t, src.size(0), name, "src.size(0)");
  TORCH_CHECK_TYPE(t.scalar_type() == acc, name, " must be ", acc, ", got ", t.scalar_type());
  check_same_device(z, "z", t, name);
}

// Sampling ops (sample_adj, neighbor_sample, csr_has_pairs): rowptr [N+1] / col [nnz] of one int
// dtype, `nodes` [n] int64 (named nodes_name: nodes, seeds or src), all on rowptr's device; every
// fanout >= -1 (-1: all neighbours; `fanout_name` names the argument).
inline void check_sample_args(const at::Tensor& rowptr, const at::Tensor& col,
                              const at::Tensor& nodes, const char* nodes_name,
                              at::IntArrayRef fanouts = {}, const char* fanout_name = "fanout") {
  check_index_1d(rowptr, "rowptr");
  check_index_1d(col, "col");
  check_same_dtype(rowptr, "rowptr", col, "col");
  TORCH_CHECK_VALUE(rowptr.numel() >= 1, "rowptr must have at least one entry");
  TORCH_CHECK_TYPE(nodes.scalar_type() == at::kLong, nodes_name, " must be int64, got ",
                   nodes.scalar_type());
  TORCH_CHECK_VALUE(nodes.dim() == 1, nodes_name, " must be 1-D, got shape ", nodes.sizes());
  check_same_device(col, "col", rowptr, "rowptr");
  check_same_device(nodes, nodes_name, rowptr, "rowptr");
  for (int64_t f : fanouts) TORCH_CHECK_VALUE(f >= -1, fanout_name, " must be >= -1, got ", f);
}

// sample_aggregate: the sampling checks, x [N, F] floating and norm [N] in its accumulation dtype,
// all on rowptr's device.
inline void check_sample_aggregate_args(const at::Tensor& rowptr, const at::Tensor& col,
                                        const at::Tensor& nodes, const at::Tensor& x,
                                        const at::Tensor& norm, int64_t fanout) {
  check_sample_args(rowptr, col, nodes, "nodes", {fanout});
  check_floating(x, "x");
  TORCH_CHECK_VALUE(x.dim() == 2 && x.size(0) == rowptr.numel() - 1, "x must have shape [",
                    rowptr.numel() - 1, ", F] (rowptr.numel() - 1 rows), got ", x.sizes());
  check_length(norm, x.size(0), "norm", "x.size(0)");
  const at::ScalarType acc = acc_dtype(x.scalar_type());
  TORCH_CHECK_TYPE(norm.scalar_type() == acc, "norm must be ", acc, ", got ", norm.scalar_type());
  check_same_device(x, "x", rowptr, "rowptr");
  check_same_device(norm, "norm", rowptr, "rowptr");
}

// csr_has_pairs: the sampling checks with src as the nodes, and dst like src.
inline void check_has_pairs_args(const at::Tensor& rowptr, const at::Tensor& col,
                                 const at::Tensor& src, const at::Tensor& dst) {
  check_sample_args(rowptr, col, src, "src");
  TORCH_CHECK_TYPE(dst.scalar_type() == at::kLong, "dst must be int64, got ", dst.scalar_type());
  check_length(dst, src.numel(), "dst", "src.numel()");
  check_same_device(dst, "dst", rowptr, "rowptr");
}

inline void check_reduction(int64_t reduction) {
  TORCH_CHECK_VALUE(reduction >= 0 && reduction <= 2,
                    "reduction must be 0 (none), 1 (mean) or 2 (sum), got ", reduction);
}

}  // namespace scalevgae
