// Per-edge arithmetic of the inner-product decoder, shared by the CPU and CUDA kernels so the
// CPU tests exercise the same formulas the GPU runs.
//
// BCE with logits x, label y in [0, 1] and positive weight p (torch's BCEWithLogits semantics):
//   loss(x, y) = -[p y log s(x) + (1 - y) log(1 - s(x))]
//              = (1 - y) x + (1 + (p - 1) y) softplus(-x)
//   dloss/dx   = (1 - y) - (1 + (p - 1) y) s(-x)
// softplus(-x) = log1p(exp(-|x|)) + max(-x, 0) never overflows, so |x| > 100 stays finite.
#pragma once

#include <cmath>
#include <cstdint>

#include "hd.h"

namespace scalevgae {
namespace decode {

// Reduction codes of edge_bce (same numbering as torch's at::Reduction).
enum Reduction : int64_t { kNone = 0, kMean = 1, kSum = 2 };

template <typename acc_t>
SVG_HD inline acc_t softplus_neg(acc_t x) {  // softplus(-x) = log(1 + exp(-x))
  using std::exp;
  using std::fabs;
  using std::log1p;
  return log1p(exp(-fabs(x))) + (x < acc_t(0) ? -x : acc_t(0));
}

template <typename acc_t>
SVG_HD inline acc_t sigmoid_neg(acc_t x) {  // s(-x) = 1 / (1 + exp(x)), stable for both signs
  using std::exp;
  if (x >= acc_t(0)) {
    acc_t t = exp(-x);
    return t / (acc_t(1) + t);
  }
  return acc_t(1) / (acc_t(1) + exp(x));
}

template <typename acc_t>
SVG_HD inline acc_t bce_loss(acc_t x, acc_t y, acc_t pos_weight) {
  acc_t lw = acc_t(1) + (pos_weight - acc_t(1)) * y;
  return (acc_t(1) - y) * x + lw * softplus_neg(x);
}

template <typename acc_t>
SVG_HD inline acc_t bce_dlogit(acc_t x, acc_t y, acc_t pos_weight) {
  acc_t lw = acc_t(1) + (pos_weight - acc_t(1)) * y;
  return (acc_t(1) - y) - lw * sigmoid_neg(x);
}

// <a, b> over F entries accumulated in acc_t; four independent partial sums (vectorizable,
// shorter dependency chain). The summation order is fixed, so results are reproducible.
template <typename scalar_t, typename acc_t>
SVG_HD inline acc_t dot_row(const scalar_t* a, const scalar_t* b, int64_t F) {
  acc_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t f = 0;
  for (; f + 4 <= F; f += 4) {
    s0 += static_cast<acc_t>(a[f]) * static_cast<acc_t>(b[f]);
    s1 += static_cast<acc_t>(a[f + 1]) * static_cast<acc_t>(b[f + 1]);
    s2 += static_cast<acc_t>(a[f + 2]) * static_cast<acc_t>(b[f + 2]);
    s3 += static_cast<acc_t>(a[f + 3]) * static_cast<acc_t>(b[f + 3]);
  }
  for (; f < F; ++f) s0 += static_cast<acc_t>(a[f]) * static_cast<acc_t>(b[f]);
  return (s0 + s1) + (s2 + s3);
}

// acc[f] += c * b[f]: one edge's contribution to a node's gradient row.
template <typename scalar_t, typename acc_t>
SVG_HD inline void axpy_row(acc_t* acc, acc_t c, const scalar_t* b, int64_t F) {
  for (int64_t f = 0; f < F; ++f) acc[f] += c * static_cast<acc_t>(b[f]);
}

}  // namespace decode
}  // namespace scalevgae
