// CPU kernel of scalevgae::gcn_spmm (fused normalized propagation), see csrc/ops.cpp.
//
// The op is bound by the random gather of nnz rows of x. Work is cut into equal chunks of the
// merge path (rows + edges, propagate_math.h), so a hub row never serializes one thread; each
// chunk sums rows edge by edge with the feature loop innermost (contiguous, vectorized; the
// common widths are compile-time constants so the accumulators stay in registers; wider rows
// are summed in register blocks of 64 features, one pass over the chunk per block) and
// prefetches (into L2) the rows of the neighbours 32 edges ahead. Rows cut by chunk boundaries
// are finished by a deterministic fix-up. No atomics on data (one counter hands out chunks).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <vector>

#include "checks.h"
#include "cpu/dynamic_for.h"
#include "cpu/isa.h"
#include "cpu/prefetch.h"
#include "cpu/width.h"
#include "propagate_host.h"
#include "propagate_math.h"

namespace scalevgae {
namespace {

using prop::ChunkInfo;

// Register block of the rows wider than 64 features (other than 128): 64 floats = 8 zmm / 16 ymm.
constexpr int kBlockF = 64;

// The shared arguments (propagate_host.h) and the line alignment the prefetches use.
template <typename scalar_t, typename acc_t, typename index_t>
struct Problem : prop::SpmmArgs<scalar_t, acc_t, index_t> {
  bool lines_aligned;  // x and its rows start on 64-byte lines (so do the 64-feature blocks)
};

// Edges ahead whose feature rows are prefetched (1e6 nodes, F=64: prefetching is ~35% faster
// than none; into L2 (prefetcht1) ~10-15% faster than into L1, whose 16 fill buffers cap the
// rows in flight; 32 edges ahead ~5% faster than 16 with the L2 hint; 8..64 are close). Rows of
// one cache line (F=16 float) keep the former L1 prefetch 16 edges ahead (~5% faster there).
template <int FB, typename scalar_t>
constexpr bool one_line_rows() {
  return FB > 0 && FB * sizeof(scalar_t) <= 64;
}
template <int FB, typename scalar_t>
constexpr int64_t prefetch_distance() {
  return one_line_rows<FB, scalar_t>() ? 16 : 32;
}

// Partial sums of the rows cut by chunk boundaries (propagate_math.h), per chunk.
template <typename acc_t>
struct Partials {
  int64_t chunk_work;
  acc_t* head_buf;     // [n_chunks, F]
  acc_t* tail_buf;     // [n_chunks, F]
  int64_t* head_rows;  // [n_chunks]
  int64_t* tail_rows;  // [n_chunks]
};

// Feature columns [f0, f0 + fw) of every row: one pass over a chunk. Rows wider than the
// register block (F > 64 other than 128) are summed block by block, so the accumulators stay in
// registers and each edge prefetches only the lines of its block.
struct FBlock {
  int64_t f0;
  int64_t fw;
};

using cpu::prefetch;  // cpu/prefetch.h: why inline asm, and when

// Prefetches the block of x's row c (and src_scale[c], a random access too): into L1 for
// one-line rows, L2 otherwise (see prefetch_distance).
template <int FB, int S, typename scalar_t, typename acc_t, typename index_t>
inline void prefetch_row(const Problem<scalar_t, acc_t, index_t>& p, int64_t c, FBlock blk) {
  constexpr bool kOneLine = one_line_rows<FB, scalar_t>();
  const int64_t bytes = (FB > 0 ? FB : blk.fw) * static_cast<int64_t>(sizeof(scalar_t));
  const int64_t F = S > 0 ? S : p.F;
  const char* lo = reinterpret_cast<const char*>(p.x + c * F + blk.f0);
  // One more line when the block does not start on a line.
  const int64_t span = cpu::prefetch_span(bytes, p.lines_aligned);
  // Fixed widths: at most bytes / 64 + 1 trips, unrolled, so the builtin stays.
  for (int64_t off = 0; off < span; off += 64) prefetch<kOneLine, FB == 0>(lo + off);
  if (p.src_scale != nullptr) prefetch<true, FB == 0>(p.src_scale + c);
}

// Sums the block of the rows of x of edges [a, b) (and of the self loop of row `self_row` if
// >= 0), each scaled by src_scale, into acc[0..fw), prefetching the rows of the edges
// prefetch_distance ahead (up to prefetch_end). FB > 0: fw == FB known at compile time; S > 0:
// the row stride F == S is too (whole rows: one block).
template <int FB, int S, typename scalar_t, typename acc_t, typename index_t>
inline void row_sum(acc_t* __restrict acc, const Problem<scalar_t, acc_t, index_t>& p, int64_t a,
                    int64_t b, int64_t prefetch_end, int64_t self_row, FBlock blk) {
  const int64_t W = FB > 0 ? FB : blk.fw;
  const int64_t F = S > 0 ? S : p.F;
  const scalar_t* __restrict x = p.x + blk.f0;
  const index_t* __restrict col = p.col;
  constexpr int64_t dist = prefetch_distance<FB, scalar_t>();
  for (int64_t f = 0; f < W; ++f) acc[f] = acc_t(0);
  if (self_row >= 0) {
    const acc_t w = prop::src_weight(p.src_scale, self_row);
    const scalar_t* xr = x + self_row * F;
    if constexpr (FB > 0) {
      prop::axpy_row<FB>(acc, w, xr);
    } else {
      for (int64_t f = 0; f < W; ++f) acc[f] += w * prop::to_acc<acc_t>(xr[f]);
    }
  }
  for (int64_t e = a; e < b; ++e) {
    if (e + dist < prefetch_end) prefetch_row<FB, S>(p, static_cast<int64_t>(col[e + dist]), blk);
    const int64_t c = col[e];
    const acc_t w = prop::src_weight(p.src_scale, c);
    const scalar_t* __restrict xr = x + c * F;
    if constexpr (FB > 0) {
      prop::axpy_row<FB>(acc, w, xr);
    } else {
      for (int64_t f = 0; f < W; ++f) acc[f] += w * prop::to_acc<acc_t>(xr[f]);
    }
  }
}

// Epilogue of the block of row i: y[i, f0 + f] from acc[f].
template <typename scalar_t, typename acc_t, typename index_t>
inline void write_row(const Problem<scalar_t, acc_t, index_t>& p, int64_t i, const acc_t* acc,
                      FBlock blk) {
  scalar_t* yr = p.y + i * p.F + blk.f0;
  const acc_t* bias = p.bias != nullptr ? p.bias + blk.f0 : nullptr;
  if (prop::self_after_scale(p.self_loops, p.self_scale, i, p.n_src)) {
    const acc_t w = p.self_scale[i];
    const scalar_t* xr = p.x + i * p.F + blk.f0;
    for (int64_t f = 0; f < blk.fw; ++f) {
      yr[f] = static_cast<scalar_t>(prop::finish_self(acc[f], p.dst_scale, i, w,
                                                      prop::to_acc<acc_t>(xr[f]), bias, f, p.relu));
    }
    return;
  }
  for (int64_t f = 0; f < blk.fw; ++f) {
    yr[f] = static_cast<scalar_t>(prop::finish(acc[f], p.dst_scale, i, bias, f, p.relu));
  }
}

// One pass over chunk k for one feature block: finishes the block of its whole rows, leaves
// the partial sums of cut rows in head/tail.
template <int FB, int S, typename scalar_t, typename acc_t, typename index_t>
inline void run_block(const Problem<scalar_t, acc_t, index_t>& p, const Partials<acc_t>& part,
                      int64_t k, const ChunkInfo& c, FBlock blk, acc_t* acc) {
  // Prologue: the rows of the first edges, which no earlier edge of this pass prefetched.
  const int64_t pro_end = std::min(c.edge_begin + prefetch_distance<FB, scalar_t>(), c.edge_end);
  for (int64_t e = c.edge_begin; e < pro_end; ++e) {
    prefetch_row<FB, S>(p, static_cast<int64_t>(p.col[e]), blk);
  }
  for (int64_t i = c.row_begin; i < c.row_end; ++i) {
    const int64_t a = prop::row_first_edge(p.rowptr, i, c.edge_begin);
    const int64_t b = p.rowptr[i + 1];
    if (i == c.head_row) {
      row_sum<FB, S>(part.head_buf + k * p.F + blk.f0, p, a, b, c.edge_end, -1, blk);
      continue;
    }
    const int64_t self_row = prop::self_in_sum(p.self_loops, p.self_scale, i, p.n_src) ? i : -1;
    row_sum<FB, S>(acc, p, a, b, c.edge_end, self_row, blk);
    write_row(p, i, acc, blk);
  }
  if (c.tail_row >= 0) {
    const int64_t a = prop::row_first_edge(p.rowptr, c.tail_row, c.edge_begin);
    row_sum<FB, S>(part.tail_buf + k * p.F + blk.f0, p, a, c.edge_end, c.edge_end, -1, blk);
  }
}

// One merge-path chunk, block by block of FB features (the last, narrower block and FB == 0
// use the runtime-width loop on `scratch` [F]). S > 0: rows of exactly S == FB features.
template <int FB, int S, typename scalar_t, typename acc_t, typename index_t>
inline void run_chunk(const Problem<scalar_t, acc_t, index_t>& p, const Partials<acc_t>& part,
                      int64_t k, acc_t* scratch) {
  const ChunkInfo c = prop::chunk_info(k, part.chunk_work, p.rowptr, p.n_rows, p.nnz);
  part.head_rows[k] = c.head_row;
  part.tail_rows[k] = c.tail_row;
  if constexpr (FB == 0) {
    run_block<0, 0>(p, part, k, c, FBlock{0, p.F}, scratch);
  } else if constexpr (S > 0) {  // whole rows of FB == S == F features
    acc_t regs[FB];
    run_block<FB, S>(p, part, k, c, FBlock{0, FB}, regs);
  } else {
    acc_t regs[FB];  // registers: the block's accumulators
    for (int64_t f0 = 0; f0 < p.F; f0 += FB) {
      const int64_t fw = std::min<int64_t>(FB, p.F - f0);
      if (fw == FB) {
        run_block<FB, S>(p, part, k, c, FBlock{f0, FB}, regs);
      } else {
        run_block<0, 0>(p, part, k, c, FBlock{f0, fw}, scratch);
      }
    }
  }
}

// Chunks [k0, k1), compiled twice (cpu/isa.h): for the baseline ISA and, picked at run time, for
// AVX2+FMA (the 64-float accumulators of a row fit the 16 ymm registers; SSE2 spills them).

template <int FB, int S, typename scalar_t, typename acc_t, typename index_t>
SVG_ATTR_AVX2 void run_chunks_avx2(const Problem<scalar_t, acc_t, index_t>& p,
                                   const Partials<acc_t>& part, int64_t k0, int64_t k1,
                                   acc_t* scratch) {
  for (int64_t k = k0; k < k1; ++k) run_chunk<FB, S>(p, part, k, scratch);
}

template <int FB, int S, typename scalar_t, typename acc_t, typename index_t>
SVG_ATTR_BASE void run_chunks_base(const Problem<scalar_t, acc_t, index_t>& p,
                                   const Partials<acc_t>& part, int64_t k0, int64_t k1,
                                   acc_t* scratch) {
  for (int64_t k = k0; k < k1; ++k) run_chunk<FB, S>(p, part, k, scratch);
}

// Finishes the row r cut by chunk boundaries that ends in chunk k: tails in chunk order, then
// the head, then the self loop (or, with a self_scale, the epilogue adds it).
template <typename scalar_t, typename acc_t, typename index_t>
void fixup_chunk(const Problem<scalar_t, acc_t, index_t>& p, const Partials<acc_t>& part, int64_t k,
                 int64_t r, acc_t* acc) {
  const int64_t F = p.F;
  for (int64_t f = 0; f < F; ++f) acc[f] = acc_t(0);
  for (int64_t j = prop::first_tail_chunk(k, r, part.tail_rows); j < k; ++j) {
    for (int64_t f = 0; f < F; ++f) acc[f] += part.tail_buf[j * F + f];
  }
  for (int64_t f = 0; f < F; ++f) acc[f] += part.head_buf[k * F + f];
  if (prop::self_in_sum(p.self_loops, p.self_scale, r, p.n_src)) {
    const acc_t w = prop::src_weight(p.src_scale, r);
    for (int64_t f = 0; f < F; ++f) acc[f] += w * prop::to_acc<acc_t>(p.x[r * F + f]);
  }
  write_row(p, r, acc, FBlock{0, F});
}

// Path work per chunk: a fixed number of gathered bytes (not the thread count), so the
// summation order, hence the result, does not depend on the number of threads.
int64_t chunk_work_for(int64_t F, int64_t elem) {
  // A blocked row counts one block per pass (a chunk makes one pass per block).
  const int64_t per_unit = std::max<int64_t>(std::min<int64_t>(F, kBlockF) * elem, 16);
  return std::max<int64_t>(64, (int64_t(1) << 18) / per_unit);
}

template <int FB, int S, typename scalar_t, typename acc_t, typename index_t>
void launch(const Problem<scalar_t, acc_t, index_t>& p) {
  const int64_t work = p.n_rows + p.nnz;
  const int64_t chunk_work = chunk_work_for(p.F, sizeof(scalar_t));
  const int64_t n_chunks = prop::num_chunks(work, chunk_work);
  if (n_chunks == 0) return;
  // Not zero-filled: only the chunks that cut a row write and read their entries.
  std::unique_ptr<acc_t[]> head_buf(new acc_t[n_chunks * p.F]), tail_buf(new acc_t[n_chunks * p.F]);
  std::vector<int64_t> head_rows(n_chunks), tail_rows(n_chunks);
  const Partials<acc_t> part{chunk_work, head_buf.get(), tail_buf.get(), head_rows.data(),
                             tail_rows.data()};
  const bool use_avx2 = cpu::isa() != cpu::Isa::kBase;
  // Threads take chunks from a shared counter (cpu/dynamic_for.h). Which chunk writes what is
  // fixed, so the result does not depend on the schedule. Small inputs run on the calling thread:
  // waking (possibly descheduled) workers would cost more than the work.
  constexpr int64_t kGrab = 4;
  constexpr int64_t kMinChunksPerWorker = 4;  // ~1 MB of gathered rows
  cpu::dynamic_for(n_chunks, kGrab, (n_chunks + kMinChunksPerWorker - 1) / kMinChunksPerWorker,
                   [&] {
                     return [&, scratch = std::vector<acc_t>(p.F)](int64_t k0, int64_t k1) mutable {
                       if (use_avx2) {
                         run_chunks_avx2<FB, S>(p, part, k0, k1, scratch.data());
                       } else {
                         run_chunks_base<FB, S>(p, part, k0, k1, scratch.data());
                       }
                     };
                   });
  std::vector<int64_t> owners;
  for (int64_t k = 0; k < n_chunks; ++k) {
    if (head_rows[k] >= 0) owners.push_back(k);
  }
  if (owners.empty()) return;
  const int64_t n_owners = static_cast<int64_t>(owners.size());
  at::parallel_for(0, n_owners, 16, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> acc(p.F);
    for (int64_t o = begin; o < end; ++o) {
      fixup_chunk(p, part, owners[o], head_rows[owners[o]], acc.data());
    }
  });
}

template <typename scalar_t, typename acc_t, typename index_t>
void dispatch_width(const Problem<scalar_t, acc_t, index_t>& p) {
  // F = 128 as whole rows: 2 x 64 blocks measured ~10% slower.
  cpu::with_width(p.F, [&](auto w) {
    constexpr int W = decltype(w)::value;
    if constexpr (W > 0) {
      launch<W, W>(p);
    } else if (p.F > kBlockF) {
      // Wider rows in register blocks of kBlockF features (F=256 at 1e6 nodes: ~1.6x faster
      // than the runtime-width loop, whose accumulators live in memory).
      launch<kBlockF, 0>(p);
    } else {
      launch<0, 0>(p);
    }
  });
}

at::Tensor gcn_spmm_cpu(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& x_in,
                        const c10::optional<at::Tensor>& dst_scale,
                        const c10::optional<at::Tensor>& src_scale, bool self_loops,
                        const c10::optional<at::Tensor>& bias, bool relu,
                        const c10::optional<at::Tensor>& /*t_rowptr*/,
                        const c10::optional<at::Tensor>& /*t_col*/,
                        const c10::optional<at::Tensor>& self_scale) {
  check_gcn_spmm_args(rowptr, col, x_in, dst_scale, src_scale, bias, self_loops, self_scale);
  const prop::SpmmOperands o =
      prop::spmm_operands(rowptr, col, x_in, dst_scale, src_scale, bias, self_scale);
  if (o.empty()) return o.y;
  TORCH_CHECK_VALUE(o.rowptr[-1].item<int64_t>() == o.col.numel(),
                    "rowptr[-1] must equal col.numel() = ", o.col.numel());

  const auto dtype = o.x.scalar_type();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "gcn_spmm_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    AT_DISPATCH_INDEX_TYPES(o.rowptr.scalar_type(), "gcn_spmm_cpu_index", [&] {
      Problem<scalar_t, acc_t, index_t> p;
      prop::fill_spmm_args(p, o, self_loops, relu);
      p.lines_aligned = cpu::rows_on_lines(p.x, p.F * static_cast<int64_t>(sizeof(scalar_t)));
      dispatch_width(p);
    });
  });
  return o.y;
}

}  // namespace

TORCH_LIBRARY_IMPL(scalevgae, CPU, m) { m.impl("gcn_spmm", &gcn_spmm_cpu); }

}  // namespace scalevgae
