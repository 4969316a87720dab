// Every op schema of scalevgae, once. Kernels register per device in csrc/cpu/ and csrc/cuda/;
// autograd and fake (meta) kernels are registered from Python (scalevgae/ops/*.py).
#include <torch/extension.h>
#include <torch/library.h>

#include "cpu/recycled_buffer.h"
#include "library_ns.h"

SVG_LIBRARY(SVG_NS, m) {
  // ---- propagation (scalevgae/ops/propagate.py) ----
  // y[i] = act(dst_scale[i] * (sum_{e in row i} src_scale[col[e]] * x[col[e]]
  //                            + [self_loops and i < x.size(0)] src_scale[i] * x[i]) + bias)
  // rowptr [R+1], col [nnz] (same int dtype), x [C, F]; dst_scale [R] / src_scale [C] / bias [F]
  // in the accumulation dtype (float32, or float64 for float64 x); act = relu if `relu`.
  // The names are the public API's (gcn_propagate) and the kernels'.
  // t_rowptr/t_col: the transposed CSR ([C+1], [nnz]) if the caller has it; only the backward
  // reads them (None: the backward builds it).
  // self_scale [min(R, C)] (acc dtype; needs self_loops): the self loop of row i becomes
  // self_scale[i] * x[i], added AFTER the destination scale instead of inside the sum:
  //   y[i] = act(dst_scale[i] * sum_e src_scale[col[e]] * x[col[e]] + self_scale[i] * x[i] + bias)
  // (sampled blocks, whose self weight c_i^2 differs from dst_scale[i] * src_scale[i]).
  m.def(
      "gcn_spmm(Tensor rowptr, Tensor col, Tensor x, Tensor? dst_scale, Tensor? src_scale, "
      "bool self_loops, Tensor? bias, bool relu, Tensor? t_rowptr, Tensor? t_col, "
      "Tensor? self_scale=None) -> Tensor");
  // ---- edge decoding (scalevgae/ops/decode.py) ----
  // z [n, F] (float16/bfloat16/float32/float64), src/dst [E] int32 or int64 (same dtype), each in
  // [0, n). acc = float32, or float64 for float64 z.
  // logits[e] = <z[src[e]], z[dst[e]]>: [E] acc.
  m.def("edge_dot(Tensor z, Tensor src, Tensor dst) -> Tensor");
  // BCE with logits of logits[e] against label [E] (acc dtype), torch's pos_weight semantics;
  // reduction 0 none / 1 mean / 2 sum. Returns (loss: [E] for none, [] otherwise; dlogit [E]):
  // dlogit[e] = d loss / d logits[e] (includes the 1/E of mean). E = 0: mean and sum are 0.
  m.def(
      "edge_bce(Tensor z, Tensor src, Tensor dst, Tensor label, float pos_weight, int reduction) "
      "-> (Tensor, Tensor)");
  // dz [n, F] (z.dtype): dz[src[e]] += coef[e] z[dst[e]], dz[dst[e]] += coef[e] z[src[e]];
  // coef [E] acc. `deterministic`: bitwise reproducible (CUDA sorts instead of atomics; the
  // CPU kernel always is).
  m.def("edge_grad(Tensor coef, Tensor z, Tensor src, Tensor dst, bool deterministic) -> Tensor");
  // ---- the exact all-pairs objective (scalevgae/ops/all_pairs.py) ----
  // z [N, F] floating -> (loss [] float64 = sum over all N^2 ordered pairs (i, j) of
  // softplus(<z_i, z_j>), grad [N, F] acc dtype = d loss / d z = 2 sum_j sigmoid(<z_i, z_j>) z_j,
  // or [0, F] when not need_grad). One pass over the pairs; no tile is stored.
  m.def("all_pairs_softplus(Tensor z, bool need_grad) -> (Tensor, Tensor)");
  // ---- sampling (scalevgae/sampling) ----
  // Counter-based per-row sampling (csrc/sample_math.h): row i of the result samples node
  // nodes[i] with the RNG stream (seed, hop, nodes[i]); fanout -1 takes every neighbor.
  // rowptr [N+1], col [nnz] (int32/int64), nodes [n] int64 ->
  // (out_rowptr [n+1] int64, out_col [k] int64 GLOBAL neighbor ids, sorted per row w/o replace).
  m.def(
      "sample_adj(Tensor rowptr, Tensor col, Tensor nodes, int fanout, bool replace, int seed, "
      "int hop) -> (Tensor, Tensor)");
  // The input layer's sample and aggregation in one pass, for gradient-free input features (the
  // loader's first layer, scalevgae/sampling/aggregated.py): row i samples v = nodes[i] exactly as
  // sample_adj(rowptr, col, nodes, fanout, replace, seed, hop) does (S_i, k_i = |S_i| entries,
  // duplicates counted) and returns, with d_v the degree of v and c = norm,
  //   y[i] = c_v^2 x[v] + c_v (d_v / k_i) sum_{u in S_i} c_u x[u]   (k_i = 0: c_v^2 x[v])
  // rowptr [N+1], col [nnz] (int32/int64), nodes [n] int64, x [N, F] floating, norm [N] in the
  // accumulation dtype -> y [n, F] x.dtype. The sampled edges are never materialized.
  m.def(
      "sample_aggregate(Tensor rowptr, Tensor col, Tensor nodes, Tensor x, Tensor norm, int "
      "fanout, "
      "bool replace, int seed, int hop) -> Tensor");
  // The whole k-hop sample (hop h uses fanouts[h] and samples every node reached so far):
  // seeds [B] int64 (distinct) -> (n_id [M] int64 seeds first then new nodes of each hop in
  // ascending id, hop_ptr [H+1] int64: nodes reached up to hop h (hop_ptr[0] = B), rowptrs[h]
  // [hop_ptr[h]+1] over the destinations n_id[:hop_ptr[h]], cols[h] LOCAL ids < hop_ptr[h+1]).
  m.def(
      "neighbor_sample(Tensor rowptr, Tensor col, Tensor seeds, int[] fanouts, bool replace, "
      "int seed) -> (Tensor, Tensor, Tensor[], Tensor[])");
  // Membership of pairs in a CSR with sorted rows: out[k] = (src[k], dst[k]) is a stored entry.
  // rowptr [N+1], col [nnz] (int32/int64), src/dst [K] int64 (values checked in Python) -> [K]
  // bool.
  m.def("csr_has_pairs(Tensor rowptr, Tensor col, Tensor src, Tensor dst) -> Tensor");
}

#ifndef SVG_CUDA_SIM  // csrc/cuda_sim/ops_sim.cpp defines the module of _C_cuda_sim
// ATen's lazy per-thread thread-count init is inline with a thread_local flag, and this library
// holds its own copy: the first at::parallel_for of ours in a thread would reset that thread's
// OpenMP count to torch.set_num_threads's value. scalevgae/_threads.py runs it first, then sets
// the count. (_C_cuda_sim calls no parallel_for, so it has no copy.)
static void init_num_threads_here() { at::internal::lazy_init_num_threads(); }

static void release_recycled_buffers() { scalevgae::cpu::recycled_buffers().release(); }

static bool with_cuda() {
#ifdef WITH_CUDA
  return true;
#else
  return false;
#endif
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("with_cuda", &with_cuda, "whether the CUDA kernels were compiled in");
  m.def("init_num_threads_here", &init_num_threads_here,
        "run this library's copy of ATen's lazy thread-count init in the calling thread");
  m.def("release_recycled_buffers", &release_recycled_buffers,
        "unmap the kept output buffers of the CPU sampler (csrc/cpu/recycled_buffer.h)");
}
#endif
