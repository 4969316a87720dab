// Per-pair arithmetic of the all-pairs objective, shared by the CPU and CUDA kernels.
//
// Every ordered pair (i, j) with logit x = <z_i, z_j> contributes softplus(x) = log(1 + e^x) to
// the loss (the BCE of x against label 0) and sigmoid(x) z_j to (1/2) dL/dz_i (the loss is
// symmetric in i and j). With e = exp(-|x|) both come from one exponential:
//   softplus(x) = max(x, 0) + log1p(e),   sigmoid(x) = (x >= 0 ? 1 : e) / (1 + e).
#pragma once

#include <cmath>

#include "hd.h"

namespace scalevgae {
namespace all_pairs {

template <typename acc_t>
struct PairTerms {
  acc_t softplus;
  acc_t sigmoid;
};

template <typename acc_t>
SVG_HD inline PairTerms<acc_t> pair_terms(acc_t x) {
  using std::exp;
  using std::fabs;
  using std::log1p;
  const acc_t e = exp(-fabs(x));
  const acc_t pos = x >= acc_t(0) ? x : acc_t(0);
  return {pos + log1p(e), (x >= acc_t(0) ? acc_t(1) : e) / (acc_t(1) + e)};
}

}  // namespace all_pairs
}  // namespace scalevgae
