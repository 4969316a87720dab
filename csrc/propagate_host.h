// Host-side argument preparation of scalevgae::gcn_spmm, shared by the CPU and CUDA backends so
// both make the same operands contiguous and fill their kernel arguments the same way. Host code
// only: SpmmArgs is plain data (the CUDA kernels take it by value), nothing here runs on a device.
// Order in a backend: check_gcn_spmm_args (checks.h), then (CUDA) the device guard, as
// contiguous() may copy, then spmm_operands and fill_spmm_args.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace scalevgae {
namespace prop {

// What the kernels of every backend read; each backend's Problem extends it with its work split.
template <typename scalar_t, typename acc_t, typename index_t>
struct SpmmArgs {
  const index_t* rowptr;
  const index_t* col;
  const scalar_t* x;
  const acc_t* dst_scale;
  const acc_t* src_scale;
  const acc_t* bias;
  const acc_t* self_scale;  // [min(n_rows, n_src)] or null (propagate_math.h)
  scalar_t* y;
  int64_t n_rows, n_src, nnz, F;
  bool self_loops, relu;
};

// The tensors of one call, contiguous (an absent optional stays undefined), and the output.
struct SpmmOperands {
  at::Tensor rowptr, col, x, dst_scale, src_scale, bias, self_scale;
  at::Tensor y;  // [n_rows, F] of x's dtype, uninitialized

  // Nothing to compute: y is returned as allocated.
  bool empty() const { return y.size(0) == 0 || y.size(1) == 0; }
};

inline at::Tensor contiguous_or_undefined(const c10::optional<at::Tensor>& t) {
  return t.has_value() ? t->contiguous() : at::Tensor();
}

inline SpmmOperands spmm_operands(const at::Tensor& rowptr, const at::Tensor& col,
                                  const at::Tensor& x, const c10::optional<at::Tensor>& dst_scale,
                                  const c10::optional<at::Tensor>& src_scale,
                                  const c10::optional<at::Tensor>& bias,
                                  const c10::optional<at::Tensor>& self_scale) {
  SpmmOperands o;
  o.x = x.contiguous();
  o.rowptr = rowptr.contiguous();
  o.col = col.contiguous();
  o.dst_scale = contiguous_or_undefined(dst_scale);
  o.src_scale = contiguous_or_undefined(src_scale);
  o.bias = contiguous_or_undefined(bias);
  o.self_scale = contiguous_or_undefined(self_scale);
  o.y = at::empty({rowptr.numel() - 1, o.x.size(1)}, o.x.options());
  return o;
}

template <typename T>
inline T* data_or_null(const at::Tensor& t) {
  return t.defined() ? t.data_ptr<T>() : nullptr;
}

// Fills the shared fields of a backend's Problem (which derives from SpmmArgs).
template <typename scalar_t, typename acc_t, typename index_t>
inline void fill_spmm_args(SpmmArgs<scalar_t, acc_t, index_t>& p, const SpmmOperands& o,
                           bool self_loops, bool relu) {
  p.rowptr = o.rowptr.data_ptr<index_t>();
  p.col = o.col.data_ptr<index_t>();
  p.x = o.x.data_ptr<scalar_t>();
  p.dst_scale = data_or_null<acc_t>(o.dst_scale);
  p.src_scale = data_or_null<acc_t>(o.src_scale);
  p.bias = data_or_null<acc_t>(o.bias);
  p.self_scale = data_or_null<acc_t>(o.self_scale);
  p.y = o.y.data_ptr<scalar_t>();
  p.n_rows = o.y.size(0);
  p.n_src = o.x.size(0);
  p.nnz = o.col.numel();
  p.F = o.x.size(1);
  p.self_loops = self_loops;
  p.relu = relu;
}

}  // namespace prop
}  // namespace scalevgae
