"""Benchmark of the fused GCN propagation y = relu(Ã x + b) against its unfused peers.

Peers, timed in the same run on the same graph and features:
  chain         torch.sparse CSR: sparse.mm(A, D x) + D x, then D *, + b, relu (cuSPARSE on GPU)
  spmm_bare     one torch.sparse.mm with the normalized Ã (self loops baked in): no scaling/bias/relu
  torch_sparse  torch_sparse.matmul(A, D x) + the same scaling, bias, relu
  pyg           PyG-style gather/scatter: index_select + index_add_ (materializes nnz x F)
Reports the median time, the speed-up over each peer (peer time / ours), the effective
bandwidth from the bytes model B_min = rowptr + col + scales + x read once + y written once
(as % of the measured copy bandwidth), the bandwidth of the random gather nnz*F*elem, and the
peak extra memory of ours.

    python benchmarks/bench_propagate.py --quick          # small graph, seconds
    python benchmarks/bench_propagate.py                  # 1e5 and 1e6 nodes, F in 16/64/256, Cora
    python benchmarks/bench_propagate.py --device cuda
    python benchmarks/bench_propagate.py --no-cora --sizes 1000000 --features 64 --passes fwd \
        --peers chain spmm_bare --name propagate-focus      # one focused configuration
    python benchmarks/bench_propagate.py --no-cora --sizes 1000000 --features 64 --passes fwd --peers \
        --reorder rcm degree --name propagate-reorder      # the graph as given and renumbered, same run

With ``--reorder``, every graph is also benchmarked renumbered by each method (``Graph.reorder``),
right after the graph as given (column ``order``; ``x_given`` = time as given / time renumbered),
and the time to compute each order and to permute the graph is printed and stored in the meta.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import time
import warnings
from typing import Callable, Optional

import torch

if __package__ in (None, ""):  # run as a file: make `benchmarks` (and this checkout's scalevgae) importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import copy_bandwidth, peak_extra_memory, time_interleaved, write_results  # noqa: E402
from scalevgae import Graph, reorder  # noqa: E402
from scalevgae.data import planted_partition  # noqa: E402
from scalevgae.ops import available_backends  # noqa: E402

warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
warnings.filterwarnings("ignore", message=".*Sparse invariant checks.*")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The PyG-style peer materializes an nnz x F message tensor (plus its gradient); skip it above this.
PYG_MAX_BYTES = 3 << 30


def cora_graph(dirs: list[str]) -> Optional[Graph]:
    """Cora's citation graph from the Planetoid raw files (ind.cora.graph), if present locally."""
    for d in dirs:
        path = os.path.join(d, "ind.cora.graph")
        if os.path.exists(path):
            with open(path, "rb") as f:
                adj = pickle.load(f, encoding="latin1")
            src = [u for u, nbrs in adj.items() for _ in nbrs]
            dst = [v for nbrs in adj.values() for v in nbrs]
            n = max(max(adj), max(dst)) + 1
            return Graph.from_edge_index(torch.tensor([src, dst]), n, undirected=True)
    return None


def peers(graph: Graph, device: torch.device, dtype: torch.dtype) -> dict[str, Callable]:
    """Unfused implementations of relu(D (A + I) D x + b): name -> fn(x, bias)."""
    # int64 indices: torch_sparse requires them, and the peers were always timed with them (ours runs
    # on the graph's own dtype, int32 where it fits).
    rowptr, col, n = graph.rowptr.long(), graph.col.long(), graph.num_nodes
    norm = graph.gcn_norm(torch.float32).to(device=device, dtype=dtype)
    A = torch.sparse_csr_tensor(rowptr, col, torch.ones(col.numel(), dtype=dtype), (n, n)).to(device)
    out: dict[str, Callable] = {}

    def chain(x, b):
        xs = x * norm[:, None]
        return torch.relu(norm[:, None] * (torch.sparse.mm(A, xs) + xs) + b)

    out["chain"] = chain
    # Ã with normalized values and self loops: one SpMM, the lower bound of any unfused chain.
    row = torch.repeat_interleave(torch.arange(n), rowptr.diff())
    loops = torch.arange(n)
    r_all, c_all = torch.cat([row, loops]), torch.cat([col, loops])
    order = torch.argsort(r_all * n + c_all)
    r_all, c_all = r_all[order], c_all[order]
    nrm = graph.gcn_norm(torch.float32).to(dtype)
    vals = nrm[r_all] * nrm[c_all]
    rp_all = torch.zeros(n + 1, dtype=torch.long)
    torch.cumsum(torch.bincount(r_all, minlength=n), 0, out=rp_all[1:])
    A_hat = torch.sparse_csr_tensor(rp_all, c_all, vals, (n, n)).to(device)
    out["spmm_bare"] = lambda x, b: torch.sparse.mm(A_hat, x)
    try:
        import torch_sparse

        S = torch_sparse.SparseTensor(rowptr=rowptr, col=col, value=torch.ones(col.numel(), dtype=dtype),
                                      sparse_sizes=(n, n)).to(device)

        def ts(x, b):
            xs = x * norm[:, None]
            return torch.relu(norm[:, None] * (torch_sparse.matmul(S, xs) + xs) + b)

        out["torch_sparse"] = ts
    except ImportError:
        pass
    row_d, col_d = row.to(device), col.to(device)

    def pyg(x, b):
        xs = x * norm[:, None]
        agg = torch.zeros_like(xs).index_add_(0, row_d, xs.index_select(0, col_d))
        return torch.relu(norm[:, None] * (agg + xs) + b)

    out["pyg"] = pyg
    return out


def make_job(fn: Callable, pas: str, x0: torch.Tensor, bias: torch.Tensor, grad: torch.Tensor) -> Callable:
    """A no-argument callable running one forward ("fwd") or forward + backward of fn."""
    if pas == "fwd":  # x0 and bias do not require grad: no graph is recorded
        return lambda: fn(x0, bias)
    x = x0.clone().requires_grad_()

    def step():
        x.grad = None
        fn(x, bias).backward(grad)

    return step


def bench_graph(name, graph, feats, device, dtype, repeat, passes, copy_bw, peer_names, order="given") -> list[dict]:
    rows = []
    g = graph.to(device)
    n, nnz = g.num_nodes, g.num_edges
    peer_fns = {k: v for k, v in peers(graph, device, dtype).items() if k in peer_names}
    elem = torch.empty((), dtype=dtype).element_size()
    gen = torch.Generator().manual_seed(0)
    for F in feats:
        x0 = torch.randn(n, F, generator=gen, dtype=dtype).to(device)
        bias = torch.randn(F, generator=gen, dtype=dtype).to(device)
        grad = torch.randn(n, F, generator=gen, dtype=dtype).to(device)
        ours = lambda x, b: g.propagate(x, bias=b, activation="relu")
        for pas in passes:
            jobs = {"ours": make_job(ours, pas, x0, bias, grad)}
            for pn, fn in peer_fns.items():
                if not (pn == "pyg" and nnz * F * elem * (2 if pas == "fwd" else 4) > PYG_MAX_BYTES):
                    jobs[pn] = make_job(fn, pas, x0, bias, grad)
            times = time_interleaved(jobs, device, warmup=1, repeat=repeat)
            del jobs  # their copies of x (fwd + bwd) before the peak-memory run
            t_ours = times["ours"]["median_s"]
            peak = peak_extra_memory(make_job(ours, pas, x0, bias, grad), device)
            row = {"graph": name, "order": order, "nodes": n, "nnz": nnz, "F": F, "pass": pas, "ours_ms": 1e3 * t_ours}
            for pn in peer_fns:
                if pn not in times:
                    row[f"{pn}_ms"] = None
                    continue
                t = times[pn]["median_s"]
                row[f"{pn}_ms"] = 1e3 * t
                row[f"x_{pn}"] = t / t_ours
            if pas == "fwd":
                idx_bytes = g.rowptr.element_size()
                b_min = (n + 1) * idx_bytes + nnz * idx_bytes + 2 * n * 4 + 2 * n * F * elem
                row["Bmin_GBps"] = b_min / t_ours / 1e9
                row["Bmin_pct_copy"] = 100 * b_min / t_ours / copy_bw
                row["gather_GBps"] = nnz * F * elem / t_ours / 1e9
            row["ours_peak_MB"] = None if peak is None else peak / 2**20
            rows.append(row)
            print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    return rows


def main(argv: Optional[list[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one small graph, F in {16, 64}: seconds")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--sizes", type=int, nargs="*", help="synthetic graph sizes (nodes)")
    ap.add_argument("--features", type=int, nargs="*", help="feature widths F")
    ap.add_argument("--repeat", type=int, default=None)
    ap.add_argument("--passes", nargs="*", default=["fwd", "fwd+bwd"], choices=["fwd", "fwd+bwd"])
    ap.add_argument("--peers", nargs="*", default=["chain", "spmm_bare", "torch_sparse", "pyg"])
    ap.add_argument("--cora-dir", default=None, help="directory with Planetoid's ind.cora.* files")
    ap.add_argument("--no-cora", action="store_true", help="synthetic graphs only (a focused run)")
    ap.add_argument("--name", default="propagate", help="results file stem")
    ap.add_argument("--reorder", nargs="*", default=[], choices=["degree", "rcm"],
                    help="also benchmark each graph renumbered by these methods (Graph.reorder), same run")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not available_backends()["cuda"].usable:
        sys.exit(f"--device cuda: the cuda backend is not usable: {available_backends()['cuda'].reason}")
    dtype = torch.float32
    sizes = args.sizes or ([20_000] if args.quick else [100_000, 1_000_000])
    feats = args.features or ([16, 64] if args.quick else [16, 64, 256])
    repeat = args.repeat or (3 if args.quick else 5)
    copy_bw = copy_bandwidth(device, 1 << 26 if args.quick else 1 << 28)
    print(f"copy bandwidth {copy_bw / 1e9:.1f} GB/s, threads {torch.get_num_threads()}", flush=True)
    graphs: list[tuple[str, Graph]] = []
    cora_dirs = [d for d in (args.cora_dir,
                             os.path.join(os.environ.get("SCALEVGAE_DATA", ""), "planetoid"),
                             os.path.join(ROOT, "data", "planetoid"),
                             os.path.join(ROOT, "..", "shared", "datasets", "planetoid"),
                             os.path.join(ROOT, "..", "..", "shared", "datasets", "planetoid")) if d]
    if not args.quick and not args.no_cora:
        cora = cora_graph(cora_dirs)
        if cora is not None:
            graphs.append(("cora", cora))
        else:
            print("Cora not found (looked in " + ", ".join(cora_dirs) + "); skipped")
    for s in sizes:
        graphs.append((f"synthetic-{s}", planted_partition(s, 16, feature_dim=0, seed=0).graph))
    rows = []
    order_s: dict[str, dict] = {}
    for name, graph in graphs:
        given = bench_graph(name, graph, feats, device, dtype, repeat, args.passes, copy_bw, args.peers)
        rows += given
        for method in args.reorder:
            t0 = time.perf_counter()
            perm = reorder.node_order(graph, method)
            t1 = time.perf_counter()
            renumbered = reorder.permute_graph(graph, perm)
            t2 = time.perf_counter()
            order_s[f"{name}/{method}"] = {"order_s": t1 - t0, "permute_s": t2 - t1}
            print(f"{name}: {method} order {t1 - t0:.2f} s, permuting the graph {t2 - t1:.2f} s", flush=True)
            for r, g in zip(bench_graph(name, renumbered, feats, device, dtype, repeat, args.passes, copy_bw,
                                        args.peers, order=method), given):
                r["x_given"] = g["ours_ms"] / r["ours_ms"]
                rows.append(r)
    cols = ["graph", "order", "nodes", "nnz", "F", "pass", "ours_ms", "x_given"]
    for p in args.peers:
        cols += [f"{p}_ms", f"x_{p}"]
    cols += ["Bmin_GBps", "Bmin_pct_copy", "gather_GBps", "ours_peak_MB"]
    meta = {"command": "python benchmarks/bench_propagate.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "copy_bandwidth_GBps": copy_bw / 1e9, "dtype": str(dtype), "repeat": repeat,
            "x_<peer>": "peer time / ours (> 1: ours is faster)", "backend": available_backends(),
            "x_given": "ours on the graph as given / ours renumbered (> 1: renumbering is faster)",
            "reorder_seconds": order_s}
    meta["backend"] = {k: v._asdict() for k, v in meta["backend"].items()}
    write_results(args.name + ("-quick" if args.quick else ""), device, rows, cols, meta)


if __name__ == "__main__":
    main()
