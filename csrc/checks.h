// Argument checks shared by every backend. Cheap metadata checks only (dtype, rank, device,
// lengths); value checks that cost O(nnz) (index ranges, monotone rowptr) run once at the
// Python boundary (scalevgae/ops/validate.py), not in kernels.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

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

}  // namespace scalevgae
