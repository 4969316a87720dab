// Host-side argument preparation of the edge decoder ops (edge_dot, edge_bce, edge_grad), shared
// by the CPU and CUDA backends so both check, make contiguous and size their operands the same
// way. Host code only. Order in a backend: the check_* below, then (CUDA) the device guard, as
// contiguous() may copy, then edge_operands.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#include "checks.h"
#include "decode_math.h"

namespace scalevgae {
namespace decode {

inline void check_edge_bce_args(const at::Tensor& z, const at::Tensor& src, const at::Tensor& dst,
                                const at::Tensor& label, int64_t reduction) {
  check_edge_args(z, src, dst);
  check_reduction(reduction);
  check_edge_vector(label, z, src, "label");
}

inline void check_edge_grad_args(const at::Tensor& coef, const at::Tensor& z, const at::Tensor& src,
                                 const at::Tensor& dst) {
  check_edge_args(z, src, dst);
  check_edge_vector(coef, z, src, "coef");
}

// The tensors of one call, contiguous: z [n, F], src/dst [E], and the per-edge vector (label of
// edge_bce, coef of edge_grad; undefined for edge_dot).
struct EdgeOperands {
  at::Tensor z, src, dst, vec;
  int64_t E, n, F;

  // Options of the per-edge results: z's device, its accumulation dtype.
  at::TensorOptions acc_options() const { return z.options().dtype(acc_dtype(z.scalar_type())); }

  // edge_grad's dz is all zeros: no edge, no node or no feature.
  bool zero_grad() const { return E == 0 || n == 0 || F == 0; }
};

inline EdgeOperands edge_operands(const at::Tensor& z, const at::Tensor& src, const at::Tensor& dst,
                                  const at::Tensor& vec = at::Tensor()) {
  EdgeOperands o;
  o.z = z.contiguous();
  o.src = src.contiguous();
  o.dst = dst.contiguous();
  o.vec = vec.defined() ? vec.contiguous() : at::Tensor();
  o.E = o.src.size(0);
  o.n = o.z.size(0);
  o.F = o.z.size(1);
  return o;
}

// Factor of dlogit: 1 / E for the mean over E > 0 edges, else 1 (computed in T).
template <typename T>
inline T dlogit_scale(int64_t reduction, int64_t E) {
  return (reduction == kMean && E > 0) ? T(1) / static_cast<T>(E) : T(1);
}

}  // namespace decode
}  // namespace scalevgae
