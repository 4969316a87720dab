// CPU kernel of the exact all-pairs objective: sum_{i,j} softplus(z_i . z_j) over all N^2
// ordered pairs and its gradient 2 sum_j sigmoid(z_i . z_j) z_j, in one pass over the pairs,
// never storing more than a tile's strip of logits (memory O(N F)).
//
// float: the pairs are scored in 256 x 256 tiles; an off-diagonal tile scores each unordered
// pair once (the loss and the gradient are symmetric), and tiles run in the rounds of a
// round-robin schedule so that no two concurrent tiles touch the same gradient rows: no
// atomics, and every sum runs in an order fixed by N alone, so the results are bitwise the same
// for any thread count. Within a tile, 16 rows at a time: their logits as a register-blocked
// product, then softplus/sigmoid with polynomial exp/log1p (about 2 ulp), then the two gradient
// products, each register-blocked like a GEMM micro-kernel (the pass is bound by FMA, not by
// loads). GCC vector extensions, compiled three times: AVX-512 (16 lanes), AVX2 + FMA (8) and
// the baseline ISA, the widest the CPU has chosen at run time (cpu/isa.h); float64 (the tests'
// precision) uses libm per pair.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cstring>
#include <utility>
#include <vector>

#include "all_pairs_math.h"
#include "checks.h"
#include "cpu/dynamic_for.h"
#include "cpu/isa.h"  // AVX-512 and AVX2 + FMA copies of the float kernel, chosen at run time
#include "cpu/simd8.h"
#include "decode_math.h"

namespace scalevgae {
namespace {

// ---------------------------------------------------------------------------------------------
// float: vectors of W = 8 (v8f) or 16 (v16f) lanes (simd8.h)
// ---------------------------------------------------------------------------------------------
using namespace simd8;

// z is scored as a zero-padded copy zp [Np, Fp]: Np a multiple of kTile, Fp one vector or a
// multiple of two. So every tile is kTile x kTile pairs and every row whole vectors; padded
// features add 0 to a dot product, padded rows and columns are masked out (s = 0, no loss).
constexpr int64_t kTile = 256;
constexpr int64_t kRows = 16;  // rows scored at a time: their logits / s, kRows x kTile, in L1

#pragma GCC push_options
#pragma GCC optimize("fp-contract=fast")  // let the polynomials and products use FMA

// loss += softplus(x), s = sigmoid(x) (the vector form of all_pairs::pair_terms); masked (M):
// lanes where mask = 0 add nothing and get s = 0.
template <typename V, bool M>
inline __attribute__((always_inline)) void terms(V x, V& loss, float* s, V mask) {
  using VI = typename IntOf<V>::type;
  const V zero = V{};
  VI bits;
  std::memcpy(&bits, &x, sizeof bits);
  bits |= static_cast<int>(0x80000000u);  // -|x|: one OR
  V nax;
  std::memcpy(&nax, &bits, sizeof nax);
  const V e = exp_nonpos(nax);
  const V l = (x > zero ? x : zero) + log1p_unit(e);
  const V sg = (x >= zero ? vsplat<V>(1.0f) : e) / (1.0f + e);
  if (M) {
    loss += l * mask;
    vstore(s, sg * mask);
  } else {
    loss += l;
    vstore(s, sg);
  }
}

// One tile: rows [a0, a0 + kTile) x columns [b0, b0 + kTile) of zp, the first na rows and nb
// columns real. a0 == b0 (a diagonal tile): every ordered pair once, the gradient into its rows.
// Otherwise each pair is scored once and counts for (i, j) and (j, i): the loss twice,
// s_ij z_j into row i and s_ij z_i into row j. Three register-blocked passes per kRows rows:
//   1. logits x = z_A z_B^T, RB rows x 2 vectors of columns at a time, from z_B^T (zbT);
//   2. gradient rows of A += s z_B, A2 accumulators (rows x KC vectors of features);
//   3. gradient rows of B += s^T z_A, likewise over columns (off-diagonal tiles only).
// Every gradient row takes its terms in an order fixed by N alone. s: kRows x kTile floats;
// zbT: Fp x kTile floats. Returns the tile's share of the loss. RB x 2 and A2 vectors of
// accumulators: 16 and 16 zmm (of 32), 8 and 8 ymm (of 16), 4 and 4 v8f in the baseline (two xmm
// each, of 16).
template <typename V, int KC, int RB, int A2>
inline __attribute__((always_inline)) double tile_body(const float* zp, const float* ztp,
                                                       int64_t Np, int64_t Fp, int64_t a0,
                                                       int64_t na, int64_t b0, int64_t nb,
                                                       float* gp, float* s, float* zbT) {
  constexpr int W = lanes<V>;
  constexpr int P = A2 / KC;  // passes 2 and 3: rows (columns) per register block
  const bool diag = a0 == b0;
  const int64_t ncol = (nb + 2 * W - 1) / (2 * W) * (2 * W);  // columns scored (<= kTile)
  for (int64_t f = 0; f < Fp; ++f)
    std::memcpy(zbT + f * kTile, ztp + f * Np + b0, static_cast<size_t>(ncol) * sizeof(float));
  const float* zB = zp + b0 * Fp;
  V tail_mask{};
  for (int l = 0; l < W; ++l) tail_mask[l] = l < nb % W ? 1.0f : 0.0f;
  double loss = 0.0;
  for (int64_t r0 = 0; r0 < na; r0 += kRows) {
    const int64_t nr = std::min(kRows, na - r0);
    const float* zA = zp + (a0 + r0) * Fp;
    for (int64_t rb = 0; rb < nr; rb += RB) {  // 1. logits
      const float* zr = zA + rb * Fp;
      for (int64_t c = 0; c < ncol; c += 2 * W) {
        V acc[RB][2];
        for (int q = 0; q < RB; ++q) acc[q][0] = acc[q][1] = V{};
        const float* col = zbT + c;
        for (int64_t f = 0; f < Fp; ++f, col += kTile) {
          const V v0 = vload<V>(col), v1 = vload<V>(col + W);
          for (int q = 0; q < RB; ++q) {
            const V w = vsplat<V>(zr[q * Fp + f]);
            acc[q][0] += w * v0;
            acc[q][1] += w * v1;
          }
        }
        for (int q = 0; q < RB; ++q) {
          vstore(s + (rb + q) * kTile + c, acc[q][0]);
          vstore(s + (rb + q) * kTile + c + W, acc[q][1]);
        }
      }
    }
    V lacc{};
    for (int64_t q = 0; q < nr; ++q) {  // softplus and sigmoid, in place
      float* sq = s + q * kTile;
      int64_t c = 0;
      for (; c + W <= nb; c += W) terms<V, false>(vload<V>(sq + c), lacc, sq + c, V{});
      if (c < nb) terms<V, true>(vload<V>(sq + c), lacc, sq + c, tail_mask), c += W;
      std::fill(sq + c, sq + ncol, 0.0f);
    }
    for (int l = 0; l < W; ++l) loss += static_cast<double>(lacc[l]);
    if (gp == nullptr) continue;
    const int64_t nrp = (nr + P - 1) / P * P;
    for (int64_t q = nr; q < nrp; ++q) std::fill(s + q * kTile, s + q * kTile + ncol, 0.0f);
    for (int64_t rb = 0; rb < nrp; rb += P) {  // 2. rows of A
      for (int64_t fc = 0; fc < Fp; fc += KC * W) {
        V acc[P][KC];
        for (int q = 0; q < P; ++q)
          for (int k = 0; k < KC; ++k) acc[q][k] = V{};
        const float* sq = s + rb * kTile;
        for (int64_t j = 0; j < ncol; ++j) {
          V v[KC];
          for (int k = 0; k < KC; ++k) v[k] = vload<V>(zB + j * Fp + fc + k * W);
          for (int q = 0; q < P; ++q) {
            const V w = vsplat<V>(sq[q * kTile + j]);
            for (int k = 0; k < KC; ++k) acc[q][k] += w * v[k];
          }
        }
        for (int q = 0; q < P; ++q) {
          float* g = gp + (a0 + r0 + rb + q) * Fp + fc;
          for (int k = 0; k < KC; ++k) vstore(g + k * W, vload<V>(g + k * W) + acc[q][k]);
        }
      }
    }
    if (diag) continue;
    for (int64_t j = 0; j < ncol; j += P) {  // 3. rows of B
      for (int64_t fc = 0; fc < Fp; fc += KC * W) {
        V acc[P][KC];
        for (int c = 0; c < P; ++c)
          for (int k = 0; k < KC; ++k) acc[c][k] = vload<V>(gp + (b0 + j + c) * Fp + fc + k * W);
        for (int64_t q = 0; q < nr; ++q) {
          V v[KC];
          for (int k = 0; k < KC; ++k) v[k] = vload<V>(zA + q * Fp + fc + k * W);
          const float* sq = s + q * kTile + j;
          for (int c = 0; c < P; ++c) {
            const V w = vsplat<V>(sq[c]);
            for (int k = 0; k < KC; ++k) acc[c][k] += w * v[k];
          }
        }
        for (int c = 0; c < P; ++c)
          for (int k = 0; k < KC; ++k) vstore(gp + (b0 + j + c) * Fp + fc + k * W, acc[c][k]);
      }
    }
  }
  return diag ? loss : 2.0 * loss;
}

using TileFn = double (*)(const float*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t,
                          int64_t, float*, float*, float*);

#define SVG_TILE_COPY(name, attr, V, KC, RB, A2)                                          \
  attr double name(const float* zp, const float* ztp, int64_t Np, int64_t Fp, int64_t a0, \
                   int64_t na, int64_t b0, int64_t nb, float* gp, float* s, float* zbT) { \
    return tile_body<V, KC, RB, A2>(zp, ztp, Np, Fp, a0, na, b0, nb, gp, s, zbT);         \
  }
SVG_TILE_COPY(tile_base_1, SVG_ATTR_BASE, v8f, 1, 2, 4)
SVG_TILE_COPY(tile_base_2, SVG_ATTR_BASE, v8f, 2, 2, 4)
#if SVG_CPU_AVX2
SVG_TILE_COPY(tile_avx2_1, SVG_ATTR_AVX2, v8f, 1, 4, 8)
SVG_TILE_COPY(tile_avx2_2, SVG_ATTR_AVX2, v8f, 2, 4, 8)
SVG_TILE_COPY(tile_avx512_1, SVG_ATTR_AVX512, v16f, 1, 8, 16)
SVG_TILE_COPY(tile_avx512_2, SVG_ATTR_AVX512, v16f, 2, 8, 16)
#endif
#undef SVG_TILE_COPY

#pragma GCC pop_options

// The widest copy this CPU runs, except that F <= 8 takes 8 lanes (16 would double the work).
struct Plan {
  int64_t Fp;
  TileFn tile;
};

Plan plan_for(int64_t F) {
  cpu::Isa isa = cpu::isa();
  if (isa == cpu::Isa::kAvx512 && F <= 8) isa = cpu::Isa::kAvx2;
  const int64_t W = isa == cpu::Isa::kAvx512 ? 16 : 8;
  const int64_t Fp = F <= W ? W : (F + 2 * W - 1) / (2 * W) * (2 * W);
  const bool one = Fp == W;
#if SVG_CPU_AVX2
  if (isa == cpu::Isa::kAvx512) return {Fp, one ? &tile_avx512_1 : &tile_avx512_2};
  if (isa == cpu::Isa::kAvx2) return {Fp, one ? &tile_avx2_1 : &tile_avx2_2};
#endif
  return {Fp, one ? &tile_base_1 : &tile_base_2};
}

// float: the diagonal tiles, then the off-diagonal tile pairs in rounds of a round-robin
// schedule (circle method): within a round no two tiles share a row or column block, so they
// run in parallel without atomics, and every gradient row takes its contributions in round
// order whatever the thread count. Returns the loss; gp (may be null) gets sum_j s_ij z_j.
double all_pairs_f32(const Plan& plan, const float* zp, const float* ztp, int64_t N, int64_t Np,
                     float* gp) {
  const int64_t Fp = plan.Fp;
  const int64_t nb = Np / kTile;
  auto rows = [&](int64_t b) { return std::min(N - b * kTile, kTile); };
  std::vector<double> losses;  // per tile, in schedule order
  // One parallel step: tiles (row block, column block) that share no block, taken one at a time
  // by the threads (cpu/dynamic_for.h: a descheduled thread does not hold up the round).
  auto step = [&](const std::vector<std::pair<int64_t, int64_t>>& tiles) {
    const size_t first = losses.size();
    losses.resize(first + tiles.size(), 0.0);
    const int64_t n = static_cast<int64_t>(tiles.size());
    cpu::dynamic_for(n, 1, n, [&] {
      return [&, s = std::vector<float>(static_cast<size_t>(kRows * kTile)),
              zbT = std::vector<float>(static_cast<size_t>(Fp * kTile))](int64_t t0,
                                                                         int64_t t1) mutable {
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t x = tiles[t].first, y = tiles[t].second;
          losses[first + t] = plan.tile(zp, ztp, Np, Fp, x * kTile, rows(x), y * kTile, rows(y), gp,
                                        s.data(), zbT.data());
        }
      };
    });
  };
  std::vector<std::pair<int64_t, int64_t>> tiles;
  for (int64_t b = 0; b < nb; ++b) tiles.emplace_back(b, b);
  step(tiles);
  const int64_t m = nb + (nb & 1);  // m - 1 rounds of m / 2 pairs (index nb: a bye)
  for (int64_t r = 0; r + 1 < m; ++r) {
    tiles.clear();
    for (int64_t p = 0; p < m / 2; ++p) {
      const int64_t a = p == 0 ? m - 1 : (r + p) % (m - 1);
      const int64_t b = p == 0 ? r : (r - p + m - 1) % (m - 1);
      if (a < nb && b < nb) tiles.emplace_back(std::min(a, b), std::max(a, b));
    }
    step(tiles);
  }
  double total = 0.0;  // a fixed order: the same bits for any thread count
  for (double v : losses) total += v;
  return total;
}

// ---------------------------------------------------------------------------------------------
// float64: per pair through the shared arithmetic (libm)
// ---------------------------------------------------------------------------------------------
constexpr int64_t kRowBlock = 16;   // rows per parallel task
constexpr int64_t kColBlock = 512;  // columns per sweep block

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
  at::Tensor grad;
  double total = 0.0;
  if (acc == at::kFloat) {
    const Plan plan = plan_for(F);
    const int64_t Np = (N + kTile - 1) / kTile * kTile;
    const at::Tensor zp = at::constant_pad_nd(zs, {0, plan.Fp - F, 0, Np - N});  // [Np, Fp]
    const at::Tensor ztp = zp.t().contiguous();                                  // [Fp, Np]
    const at::Tensor gp = need_grad ? at::zeros({Np, plan.Fp}, zs.options()) : at::Tensor();
    total = all_pairs_f32(plan, zp.data_ptr<float>(), ztp.data_ptr<float>(), N, Np,
                          need_grad ? gp.data_ptr<float>() : nullptr);
    grad = need_grad ? gp.narrow(0, 0, N).narrow(1, 0, F).contiguous()
                     : at::empty({0, F}, zs.options());
  } else {
    grad = need_grad ? at::zeros({N, F}, zs.options()) : at::empty({0, F}, zs.options());
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
