// CPU kernel of the exact all-pairs objective: sum_{i,j} softplus(z_i . z_j) over all N^2
// ordered pairs and its gradient 2 sum_j sigmoid(z_i . z_j) z_j, in one pass over the pairs,
// never storing a tile (memory O(N F)).
//
// Threads own blocks of rows: no atomics, and every row's sums run over the columns in the same
// order, so the results are bitwise the same for any thread count. A row block sweeps the
// columns in blocks small enough to stay in L2 (z^T for the dot products, vectorised over 8
// columns; z row-major for the gradient). float runs on GCC vector extensions with polynomial
// exp/log1p (about 2 ulp), compiled twice: for AVX2 + FMA, chosen when the CPU has them, and for
// the baseline ISA; float64 (the tests' precision) uses libm per pair.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cstring>
#include <vector>

#include "all_pairs_math.h"
#include "checks.h"
#include "decode_math.h"

#if defined(__GNUC__) && defined(__x86_64__)
#pragma GCC diagnostic ignored "-Wpsabi"  // 32-byte vectors only cross always_inline helpers
#define SVG_X86_AVX2 1  // an AVX2 + FMA copy of the float kernel, chosen at run time
#endif

namespace scalevgae {
namespace {

constexpr int64_t kRowBlock = 16;   // rows per parallel task
constexpr int64_t kColBlock = 512;  // columns per sweep block (z^T and z slices stay in L2); a multiple of 64

// ---------------------------------------------------------------------------------------------
// float: 8-wide vectors
// ---------------------------------------------------------------------------------------------
typedef float v8f __attribute__((vector_size(32)));
typedef int v8i __attribute__((vector_size(32)));

inline __attribute__((always_inline)) v8f load8(const float* p) {
  v8f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline __attribute__((always_inline)) void store8(float* p, v8f v) { std::memcpy(p, &v, sizeof v); }

inline __attribute__((always_inline)) v8f splat(float a) { return v8f{} + a; }

// exp(x) for x <= 0 (Cephes' expf polynomial after a Cody-Waite reduction). x is clamped at
// -80: exp(-80) ~ 2e-35 stands in for smaller values (an absolute error below 2e-35 per pair).
inline __attribute__((always_inline)) v8f exp_nonpos(v8f x) {
  x = x < -80.0f ? splat(-80.0f) : x;
  const v8f magic = splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  const v8f n = (x * 1.44269504088896341f + magic) - magic;
  v8f r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  v8f p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  v8i bits;
  std::memcpy(&bits, &p, sizeof bits);
  bits += __builtin_convertvector(n, v8i) << 23;  // times 2^n (n >= -116: no denormals)
  std::memcpy(&p, &bits, sizeof p);
  return p;
}

// log1p(e) for e in [0, 1]: e q(e), q a degree-8 Chebyshev fit of log1p(e) / e (relative error
// 2.5e-7, also for tiny e).
inline __attribute__((always_inline)) v8f log1p_unit(v8f e) {
  v8f q = splat(0.005186003632843494f);
  q = q * e - 0.029210267588496208f;
  q = q * e + 0.07754038274288177f;
  q = q * e - 0.13583941757678986f;
  q = q * e + 0.19055955111980438f;
  q = q * e - 0.24825648963451385f;
  q = q * e + 0.3331601023674011f;
  q = q * e - 0.4999925494194031f;
  q = q * e + 0.9999999403953552f;
  return q * e;
}

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
inline __attribute__((always_inline)) void grad_block(float* g, const float* s, const float* zs, int64_t j0,
                                                      int64_t j1) {
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

// Rows [i0, i1) against every column: row_loss[i] = sum_j softplus(x_ij) (in column-block order),
// grad[i] = sum_j sigmoid(x_ij) z_j (grad may be null). zs [N, F] row-major, zt [F, N].
inline __attribute__((always_inline)) void rows_f32_body(const float* zs, const float* zt, int64_t N, int64_t F,
                                                         int64_t i0, int64_t i1, float* grad, double* row_loss) {
  alignas(32) float sbuf[kColBlock];
  for (int64_t j0 = 0; j0 < N; j0 += kColBlock) {
    const int64_t j1 = std::min(N, j0 + kColBlock);
    for (int64_t i = i0; i < i1; ++i) {
      const float* zi = zs + i * F;
      v8f lacc = v8f{};
      int64_t j = j0;
      for (; j + 64 <= j1; j += 64) {  // 8 independent FMA chains over f
        v8f a[8];
        for (int u = 0; u < 8; ++u) a[u] = v8f{};
        const float* c = zt + j;
        for (int64_t f = 0; f < F; ++f, c += N) {
          const v8f w = splat(zi[f]);
          for (int u = 0; u < 8; ++u) a[u] += w * load8(c + 8 * u);
        }
        for (int u = 0; u < 8; ++u) terms8(a[u], lacc, sbuf + (j - j0) + 8 * u);
      }
      for (; j + 8 <= j1; j += 8) {
        v8f a = v8f{};
        const float* c = zt + j;
        for (int64_t f = 0; f < F; ++f, c += N) a += splat(zi[f]) * load8(c);
        terms8(a, lacc, sbuf + (j - j0));
      }
      double loss = 0.0;
      for (; j < j1; ++j) {  // < 8 tail columns
        const auto t = all_pairs::pair_terms<float>(decode::dot_row<float, float>(zi, zs + j * F, F));
        loss += t.softplus;
        sbuf[j - j0] = t.sigmoid;
      }
      for (int l = 0; l < 8; ++l) loss += static_cast<double>(lacc[l]);
      row_loss[i] += loss;
      if (grad == nullptr) continue;
      float* g = grad + i * F;
      switch (F) {
        case 8: grad_block<1>(g, sbuf, zs, j0, j1); break;
        case 16: grad_block<2>(g, sbuf, zs, j0, j1); break;
        case 32: grad_block<4>(g, sbuf, zs, j0, j1); break;
        case 64: grad_block<8>(g, sbuf, zs, j0, j1); break;
        default:
          for (int64_t jj = j0; jj < j1; ++jj) decode::axpy_row<float, float>(g, sbuf[jj - j0], zs + jj * F, F);
      }
    }
  }
}

void rows_f32_generic(const float* zs, const float* zt, int64_t N, int64_t F, int64_t i0, int64_t i1, float* grad,
                      double* row_loss) {
  rows_f32_body(zs, zt, N, F, i0, i1, grad, row_loss);
}

#ifdef SVG_X86_AVX2
__attribute__((target("avx2,fma"))) void rows_f32_avx2(const float* zs, const float* zt, int64_t N, int64_t F,
                                                        int64_t i0, int64_t i1, float* grad, double* row_loss) {
  rows_f32_body(zs, zt, N, F, i0, i1, grad, row_loss);
}
#endif

#pragma GCC pop_options

using RowsF32 = void (*)(const float*, const float*, int64_t, int64_t, int64_t, int64_t, float*, double*);

RowsF32 pick_rows_f32() {
#ifdef SVG_X86_AVX2
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return &rows_f32_avx2;
#endif
  return &rows_f32_generic;
}

// ---------------------------------------------------------------------------------------------
// float64: per pair through the shared arithmetic (libm)
// ---------------------------------------------------------------------------------------------
void rows_f64(const double* zs, int64_t N, int64_t F, int64_t i0, int64_t i1, double* grad, double* row_loss) {
  for (int64_t j0 = 0; j0 < N; j0 += kColBlock) {
    const int64_t j1 = std::min(N, j0 + kColBlock);
    for (int64_t i = i0; i < i1; ++i) {
      const double* zi = zs + i * F;
      double loss = 0.0;
      for (int64_t j = j0; j < j1; ++j) {
        const auto t = all_pairs::pair_terms<double>(decode::dot_row<double, double>(zi, zs + j * F, F));
        loss += t.softplus;
        if (grad != nullptr) decode::axpy_row<double, double>(grad + i * F, t.sigmoid, zs + j * F, F);
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
  std::vector<double> row_loss(static_cast<size_t>(N), 0.0);
  double* rl = row_loss.data();
  const int64_t nblocks = (N + kRowBlock - 1) / kRowBlock;
  if (acc == at::kFloat) {
    const at::Tensor zt = zs.t().contiguous();  // [F, N]
    const float* zp = zs.data_ptr<float>();
    const float* tp = zt.data_ptr<float>();
    float* gp = need_grad ? grad.data_ptr<float>() : nullptr;
    static const RowsF32 rows_f32 = pick_rows_f32();
    at::parallel_for(0, nblocks, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        rows_f32(zp, tp, N, F, b * kRowBlock, std::min(N, (b + 1) * kRowBlock), gp, rl);
      }
    });
  } else {
    const double* zp = zs.data_ptr<double>();
    double* gp = need_grad ? grad.data_ptr<double>() : nullptr;
    at::parallel_for(0, nblocks, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) rows_f64(zp, N, F, b * kRowBlock, std::min(N, (b + 1) * kRowBlock), gp, rl);
    });
  }
  double total = 0.0;  // sequential over rows: the same bits for any thread count
  for (int64_t i = 0; i < N; ++i) total += rl[i];
  if (need_grad) grad.mul_(2);
  return {at::scalar_tensor(total, zs.options().dtype(at::kDouble)), grad};
}

}  // namespace

TORCH_LIBRARY_IMPL(scalevgae, CPU, m) { m.impl("all_pairs_softplus", &all_pairs_softplus_cpu); }

}  // namespace scalevgae
