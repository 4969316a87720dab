// CPU kernel of the exact all-pairs objective: sum_{i,j} softplus(z_i . z_j) over all N^2
// ordered pairs and its gradient 2 sum_j sigmoid(z_i . z_j) z_j, in one pass over the pairs,
// never storing a tile (memory O(N F)).
//
// float: the pairs are scored in 256 x 256 tiles; an off-diagonal tile scores each unordered
// pair once (the loss and the gradient are symmetric), and tiles run in the rounds of a
// round-robin schedule so that no two concurrent tiles touch the same gradient rows: no
// atomics, and every sum runs in an order fixed by N alone, so the results are bitwise the same
// for any thread count. z^T serves the dot products (vectorised over 8 columns), z row-major
// the gradient rows. float runs on GCC vector extensions with polynomial
// exp/log1p (about 2 ulp), compiled twice: for AVX2 + FMA, chosen when the CPU has them, and for
// the baseline ISA; float64 (the tests' precision) uses libm per pair.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cstring>
#include <vector>

#include "all_pairs_math.h"
#include "checks.h"
#include "cpu/isa.h"  // an AVX2 + FMA copy of the float kernel, chosen at run time
#include "cpu/simd8.h"
#include "decode_math.h"

namespace scalevgae {
namespace {

// float: rows = columns of a tile (its z^T and z slices stay in L1/L2)
constexpr int64_t kTile = 256;
constexpr int64_t kRowBlock = 16;   // float64: rows per parallel task
constexpr int64_t kColBlock = 512;  // float64: columns per sweep block

// ---------------------------------------------------------------------------------------------
// float: 8-wide vectors (simd8.h)
// ---------------------------------------------------------------------------------------------
using namespace simd8;

// 8 logits -> loss += softplus(x), s = sigmoid(x) (the vector form of all_pairs::pair_terms).
inline __attribute__((always_inline)) void terms8(v8f x, v8f& loss, float* s) {
  const v8f zero = v8f{};
  const v8f ax = x < zero ? -x : x;
  const v8f e = exp_nonpos(-ax);
  loss += (x > zero ? x : zero) + log1p_unit(e);
  store8(s, (x >= zero ? splat(1.0f) : e) / (1.0f + e));
}

// g[0:8K] += sum_j s[j] zs[j, 0:8K] over the columns of one block (K compile-time: registers).
// S = 8 / K interleaved accumulator sets keep 8 independent FMA chains in flight (one chain
// per register would wait on the FMA latency every column), summed in a fixed order at the end.
template <int K>
inline __attribute__((always_inline)) void grad_block(float* g, const float* s, const float* zs,
                                                      int64_t j0, int64_t j1) {
  constexpr int S = K >= 8 ? 1 : 8 / K;
  v8f acc[S][K];
  for (int u = 0; u < S; ++u)
    for (int k = 0; k < K; ++k) acc[u][k] = v8f{};
  int64_t j = j0;
  for (; j + S <= j1; j += S) {
    for (int u = 0; u < S; ++u) {
      const v8f w = splat(s[j + u - j0]);
      const float* zj = zs + (j + u) * 8 * K;
      for (int k = 0; k < K; ++k) acc[u][k] += w * load8(zj + 8 * k);
    }
  }
  for (; j < j1; ++j) {
    const v8f w = splat(s[j - j0]);
    const float* zj = zs + j * 8 * K;
    for (int k = 0; k < K; ++k) acc[0][k] += w * load8(zj + 8 * k);
  }
  for (int k = 0; k < K; ++k) {
    v8f t = load8(g + 8 * k);
    for (int u = 0; u < S; ++u) t += acc[u][k];
    store8(g + 8 * k, t);
  }
}

#pragma GCC push_options
#pragma GCC optimize("fp-contract=fast")  // let the polynomials and dot products use FMA

// Row zi against columns [c0, c1): s[c - c0] = sigmoid(x_ic); returns sum_c softplus(x_ic).
inline __attribute__((always_inline)) double row_terms(const float* zi, const float* zs,
                                                       const float* zt, int64_t N, int64_t F,
                                                       int64_t c0, int64_t c1, float* s) {
  v8f lacc = v8f{};
  int64_t j = c0;
  for (; j + 64 <= c1; j += 64) {  // 8 independent FMA chains over f
    v8f a[8];
    for (int u = 0; u < 8; ++u) a[u] = v8f{};
    const float* c = zt + j;
    for (int64_t f = 0; f < F; ++f, c += N) {
      const v8f w = splat(zi[f]);
      for (int u = 0; u < 8; ++u) a[u] += w * load8(c + 8 * u);
    }
    for (int u = 0; u < 8; ++u) terms8(a[u], lacc, s + (j - c0) + 8 * u);
  }
  for (; j + 8 <= c1; j += 8) {
    v8f a = v8f{};
    const float* c = zt + j;
    for (int64_t f = 0; f < F; ++f, c += N) a += splat(zi[f]) * load8(c);
    terms8(a, lacc, s + (j - c0));
  }
  double loss = 0.0;
  for (; j < c1; ++j) {  // < 8 tail columns
    const auto t = all_pairs::pair_terms<float>(decode::dot_row<float, float>(zi, zs + j * F, F));
    loss += t.softplus;
    s[j - c0] = t.sigmoid;
  }
  for (int l = 0; l < 8; ++l) loss += static_cast<double>(lacc[l]);
  return loss;
}

// g += sum_{c in [c0, c1)} s[c - c0] zs[c].
inline __attribute__((always_inline)) void row_grad(float* g, const float* s, const float* zs,
                                                    int64_t F, int64_t c0, int64_t c1) {
  switch (F) {
    case 8:
      grad_block<1>(g, s, zs, c0, c1);
      break;
    case 16:
      grad_block<2>(g, s, zs, c0, c1);
      break;
    case 32:
      grad_block<4>(g, s, zs, c0, c1);
      break;
    case 64:
      grad_block<8>(g, s, zs, c0, c1);
      break;
    default:
      for (int64_t c = c0; c < c1; ++c) decode::axpy_row<float, float>(g, s[c - c0], zs + c * F, F);
  }
}

// A diagonal tile, rows = columns = [t0, t1): every ordered pair once. s: kTile floats.
inline __attribute__((always_inline)) double diag_tile_body(const float* zs, const float* zt,
                                                            int64_t N, int64_t F, int64_t t0,
                                                            int64_t t1, float* grad, float* s) {
  double loss = 0.0;
  for (int64_t i = t0; i < t1; ++i) {
    loss += row_terms(zs + i * F, zs, zt, N, F, t0, t1, s);
    if (grad != nullptr) row_grad(grad + i * F, s, zs, F, t0, t1);
  }
  return loss;
}

// An off-diagonal tile, rows [a0, a1) x columns [b0, b1) (disjoint ranges): each pair is scored
// once and counts for (i, j) and (j, i): the loss twice, sigmoid(x_ij) z_j into row i and
// sigmoid(x_ij) z_i into row j. The column side is summed in gT [F, kTile] (transposed, so four
// rows update it per load/store) and added to grad once. s: 4 x kTile floats.
inline __attribute__((always_inline)) double pair_tile_body(const float* zs, const float* zt,
                                                            int64_t N, int64_t F, int64_t a0,
                                                            int64_t a1, int64_t b0, int64_t b1,
                                                            float* grad, float* s, float* gT) {
  const int64_t nb = b1 - b0;
  double loss = 0.0;
  if (grad != nullptr) std::fill(gT, gT + F * kTile, 0.0f);
  for (int64_t i = a0; i < a1; i += 4) {
    const int64_t r = std::min<int64_t>(4, a1 - i);
    for (int64_t q = 0; q < r; ++q) {
      loss += row_terms(zs + (i + q) * F, zs, zt, N, F, b0, b1, s + q * kTile);
      if (grad != nullptr) row_grad(grad + (i + q) * F, s + q * kTile, zs, F, b0, b1);
    }
    if (grad == nullptr) continue;
    for (int64_t q = r; q < 4; ++q)
      std::fill(s + q * kTile, s + q * kTile + nb, 0.0f);  // absent rows add 0
    const float* z0 = zs + i * F;
    const float* z1 = r > 1 ? z0 + F : z0;
    const float* z2 = r > 2 ? z0 + 2 * F : z0;
    const float* z3 = r > 3 ? z0 + 3 * F : z0;
    const float *s0 = s, *s1 = s + kTile, *s2 = s + 2 * kTile, *s3 = s + 3 * kTile;
    for (int64_t f = 0; f < F; ++f) {
      const v8f w0 = splat(z0[f]), w1 = splat(z1[f]), w2 = splat(z2[f]), w3 = splat(z3[f]);
      float* gt = gT + f * kTile;
      int64_t c = 0;
      for (; c + 8 <= nb; c += 8) {
        store8(gt + c, load8(gt + c) + w0 * load8(s0 + c) + w1 * load8(s1 + c) +
                           w2 * load8(s2 + c) + w3 * load8(s3 + c));
      }
      for (; c < nb; ++c) gt[c] += z0[f] * s0[c] + z1[f] * s1[c] + z2[f] * s2[c] + z3[f] * s3[c];
    }
  }
  if (grad != nullptr) {
    for (int64_t c = 0; c < nb; ++c) {
      float* g = grad + (b0 + c) * F;
      for (int64_t f = 0; f < F; ++f) g[f] += gT[f * kTile + c];
    }
  }
  return 2.0 * loss;
}

double diag_tile_generic(const float* zs, const float* zt, int64_t N, int64_t F, int64_t t0,
                         int64_t t1, float* grad, float* s) {
  return diag_tile_body(zs, zt, N, F, t0, t1, grad, s);
}

double pair_tile_generic(const float* zs, const float* zt, int64_t N, int64_t F, int64_t a0,
                         int64_t a1, int64_t b0, int64_t b1, float* grad, float* s, float* gT) {
  return pair_tile_body(zs, zt, N, F, a0, a1, b0, b1, grad, s, gT);
}

#if SVG_CPU_AVX2
__attribute__((target("avx2,fma"))) double diag_tile_avx2(const float* zs, const float* zt,
                                                          int64_t N, int64_t F, int64_t t0,
                                                          int64_t t1, float* grad, float* s) {
  return diag_tile_body(zs, zt, N, F, t0, t1, grad, s);
}

__attribute__((target("avx2,fma"))) double pair_tile_avx2(const float* zs, const float* zt,
                                                          int64_t N, int64_t F, int64_t a0,
                                                          int64_t a1, int64_t b0, int64_t b1,
                                                          float* grad, float* s, float* gT) {
  return pair_tile_body(zs, zt, N, F, a0, a1, b0, b1, grad, s, gT);
}
#endif

#pragma GCC pop_options

struct TileKernels {
  double (*diag)(const float*, const float*, int64_t, int64_t, int64_t, int64_t, float*, float*);
  double (*pair)(const float*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                 float*, float*, float*);
};

TileKernels pick_tile_kernels() {
#if SVG_CPU_AVX2
  if (cpu::has_avx2_fma()) return {&diag_tile_avx2, &pair_tile_avx2};
#endif
  return {&diag_tile_generic, &pair_tile_generic};
}

// float: the diagonal tiles, then the off-diagonal tile pairs in rounds of a round-robin
// schedule (circle method): within a round no two tiles share a row or column block, so they
// run in parallel without atomics, and every gradient row takes its contributions in round
// order whatever the thread count. Returns the loss; grad (may be null) gets sum_j s_ij z_j.
double all_pairs_f32(const float* zs, const float* zt, int64_t N, int64_t F, float* grad) {
  static const TileKernels k = pick_tile_kernels();
  const int64_t nb = (N + kTile - 1) / kTile;
  auto lo = [&](int64_t b) { return b * kTile; };
  auto hi = [&](int64_t b) { return std::min(N, (b + 1) * kTile); };
  std::vector<double> diag(static_cast<size_t>(nb), 0.0);
  at::parallel_for(0, nb, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> s(kTile);
    for (int64_t b = b0; b < b1; ++b) diag[b] = k.diag(zs, zt, N, F, lo(b), hi(b), grad, s.data());
  });
  const int64_t m = nb + (nb & 1), half = m / 2;  // m - 1 rounds of m / 2 pairs (index nb: a bye)
  std::vector<double> pair(static_cast<size_t>(std::max<int64_t>(m - 1, 0) * half), 0.0);
  for (int64_t r = 0; r + 1 < m; ++r) {
    at::parallel_for(0, half, 1, [&](int64_t p0, int64_t p1) {
      std::vector<float> s(4 * kTile), gT(static_cast<size_t>(F * kTile));
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t a = p == 0 ? m - 1 : (r + p) % (m - 1);
        const int64_t b = p == 0 ? r : (r - p + m - 1) % (m - 1);
        if (a >= nb || b >= nb) continue;
        const int64_t x = std::min(a, b), y = std::max(a, b);
        pair[r * half + p] =
            k.pair(zs, zt, N, F, lo(x), hi(x), lo(y), hi(y), grad, s.data(), gT.data());
      }
    });
  }
  double total = 0.0;  // a fixed order: the same bits for any thread count
  for (double v : diag) total += v;
  for (double v : pair) total += v;
  return total;
}

// ---------------------------------------------------------------------------------------------
// float64: per pair through the shared arithmetic (libm)
// ---------------------------------------------------------------------------------------------
void rows_f64(const double* zs, int64_t N, int64_t F, int64_t i0, int64_t i1, double* grad,
              double* row_loss) {
  for (int64_t j0 = 0; j0 < N; j0 += kColBlock) {
    const int64_t j1 = std::min(N, j0 + kColBlock);
    for (int64_t i = i0; i < i1; ++i) {
      const double* zi = zs + i * F;
      double loss = 0.0;
      for (int64_t j = j0; j < j1; ++j) {
        const auto t =
            all_pairs::pair_terms<double>(decode::dot_row<double, double>(zi, zs + j * F, F));
        loss += t.softplus;
        if (grad != nullptr)
          decode::axpy_row<double, double>(grad + i * F, t.sigmoid, zs + j * F, F);
      }
      row_loss[i] += loss;
    }
  }
}

std::tuple<at::Tensor, at::Tensor> all_pairs_softplus_cpu(const at::Tensor& z_, bool need_grad) {
  check_all_pairs_args(z_);
  const at::ScalarType acc = acc_dtype(z_.scalar_type());
  const at::Tensor zs = z_.to(acc).contiguous();
  const int64_t N = zs.size(0), F = zs.size(1);
  auto grad = need_grad ? at::zeros({N, F}, zs.options()) : at::empty({0, F}, zs.options());
  double total = 0.0;
  if (acc == at::kFloat) {
    const at::Tensor zt = zs.t().contiguous();  // [F, N]
    total = all_pairs_f32(zs.data_ptr<float>(), zt.data_ptr<float>(), N, F,
                          need_grad ? grad.data_ptr<float>() : nullptr);
  } else {
    std::vector<double> row_loss(static_cast<size_t>(N), 0.0);
    double* rl = row_loss.data();
    const double* zp = zs.data_ptr<double>();
    double* gp = need_grad ? grad.data_ptr<double>() : nullptr;
    const int64_t nblocks = (N + kRowBlock - 1) / kRowBlock;
    at::parallel_for(0, nblocks, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b)
        rows_f64(zp, N, F, b * kRowBlock, std::min(N, (b + 1) * kRowBlock), gp, rl);
    });
    for (int64_t i = 0; i < N; ++i)
      total += rl[i];  // sequential over rows: the same bits for any thread count
  }
  if (need_grad) grad.mul_(2);
  return {at::scalar_tensor(total, zs.options().dtype(at::kDouble)), grad};
}

}  // namespace

TORCH_LIBRARY_IMPL(scalevgae, CPU, m) { m.impl("all_pairs_softplus", &all_pairs_softplus_cpu); }

}  // namespace scalevgae
