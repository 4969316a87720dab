"""Reduced kernel-vs-CPU checks of the CUDA kernels: of a (sanitized) scalevgae._C_cuda_sim, run by
scripts/sanitize_cuda_sim.sh under ASan+UBSan or TSan (LD_PRELOAD of the runtime), or of the real
CUDA kernels under compute-sanitizer (scripts/gpu_check.sh).

    python tests/cuda_sim/sanitizer_checks.py --so <path of _C_cuda_sim*.so> [--blocks N] [--seed S]
    python tests/cuda_sim/sanitizer_checks.py --device cuda [--small]

Does not import the scalevgae package (that would load the plain _C_cuda_sim, whose op namespace
the sanitized one registers): the CPU kernels of scalevgae/_C*.so, themselves tested against the
reference, are the expected values. Every CUDA kernel runs: propagation (both vector widths, every
dtype, int32/int64, a hub row over several chunks, empty rows, scales, self loops), the decoder
(atomic and deterministic gradients, E = 0), the sampler (light and warp rows) and the membership
kernel. Exit status 1 on a mismatch; a sanitizer report aborts the process."""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOL = {torch.float64: 1e-10, torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 6e-2}
failures: list[str] = []


def check(name: str, got, want, tol: float = 0.0) -> None:
    got = [got] if isinstance(got, torch.Tensor) else list(got)
    want = [want] if isinstance(want, torch.Tensor) else list(want)
    for g, w in zip(got, want):
        ok = g.shape == w.shape and g.dtype == w.dtype
        if ok and g.numel():
            ok = torch.equal(g, w) if tol == 0 else torch.allclose(g.double(), w.double(), rtol=tol, atol=tol)
        if not ok:
            failures.append(name)
            print(f"FAIL {name}")
            return


def graph(n: int, hub: int, idx: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """CSR with sorted rows: a hub row 0 of `hub` neighbours, empty rows, duplicates allowed."""
    deg = torch.randint(0, 6, (n,))
    deg[0] = hub
    deg[n // 2] = 0
    col = torch.cat([torch.sort(torch.randint(0, n, (int(d),))).values for d in deg])
    rowptr = torch.zeros(n + 1, dtype=torch.long)
    rowptr[1:] = torch.cumsum(deg, 0)
    return rowptr.to(idx), col.to(idx)


class OnDevice:
    """torch.ops.<ns> with every tensor argument moved to `device` and results moved back."""

    def __init__(self, ns, device: str):
        self.ns, self.device = ns, device

    def __getattr__(self, name):
        op = getattr(self.ns, name)

        def back(r):
            return r.cpu() if isinstance(r, torch.Tensor) else type(r)(back(x) for x in r)

        def call(*a):
            return back(op(*[x.to(self.device) if isinstance(x, torch.Tensor) else x for x in a]))

        return call


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--so", help="a _C_cuda_sim build to test (the emulator)")
    ap.add_argument("--device", choices=["sim", "cuda"], default="sim", help="cuda: the real kernels of _C")
    ap.add_argument("--blocks", type=int, default=1, help="emulator: blocks run at once")
    ap.add_argument("--seed", type=int, default=0, help="emulator: block-order seed")
    ap.add_argument("--small", action="store_true", help="float32/float16 and int64 only")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    (cpu_so,) = glob.glob(os.path.join(ROOT, "scalevgae", "_C.*.so")) or [None]
    if cpu_so is None:
        print("sanitizer_checks: scalevgae/_C*.so not built")
        return 2
    torch.ops.load_library(cpu_so)
    cpu = torch.ops.scalevgae
    if args.device == "cuda":
        sim = OnDevice(torch.ops.scalevgae, "cuda")
    else:
        spec = importlib.util.spec_from_file_location("_C_cuda_sim", args.so)
        sim_mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sim_mod)
        sim_mod.set_sim_options(args.seed, args.blocks)
        sim = torch.ops.scalevgae_cuda_sim
    dtypes = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
    idxs = (torch.int32, torch.int64)
    if args.small:
        dtypes, idxs = (torch.float32, torch.float16), (torch.int64,)

    n = 200
    for idx in idxs:
        rowptr, col = graph(n, 700, idx)  # 700 edges: ~10 chunks of 64
        for dtype in dtypes:
            acc = torch.float64 if dtype == torch.float64 else torch.float32
            for F in (3, 16):  # scalar loads / 16-byte vector loads
                x = torch.randn(n, F, dtype=dtype)
                rs, cs, b = torch.rand(n, dtype=acc), torch.rand(n, dtype=acc), torch.randn(F, dtype=acc)
                ss = torch.rand(n, dtype=acc)
                for a in [(None, None, False, None, False, None), (rs, cs, True, b, True, None),
                          (rs, cs, True, None, False, ss)]:
                    r, c, loops, bias, relu, self_scale = a
                    want = cpu.gcn_spmm(rowptr, col, x, r, c, loops, bias, relu, None, None, self_scale)
                    got = sim.gcn_spmm(rowptr, col, x, r, c, loops, bias, relu, None, None, self_scale)
                    check(f"gcn_spmm {idx} {dtype} F={F} loops={loops}", got, want, TOL[dtype])
                E = 300
                src = torch.randint(0, n, (E,), dtype=idx)
                dst = torch.randint(0, n, (E,), dtype=idx)
                src[:40] = 0  # a hub: many atomics into one row
                z = torch.randn(n, F, dtype=dtype)
                check(f"edge_dot {idx} {dtype} F={F}", sim.edge_dot(z, src, dst), cpu.edge_dot(z, src, dst), TOL[dtype])
                label = (torch.rand(E) < 0.5).to(acc)
                for red in (0, 1):
                    check(f"edge_bce {idx} {dtype} F={F} r={red}", sim.edge_bce(z, src, dst, label, 2.0, red),
                          cpu.edge_bce(z, src, dst, label, 2.0, red), TOL[dtype])
                coef = torch.randn(E, dtype=acc)
                for det in (False, True):
                    check(f"edge_grad {idx} {dtype} F={F} det={det}", sim.edge_grad(coef, z, src, dst, det),
                          cpu.edge_grad(coef, z, src, dst, True), 4 * TOL[dtype])
                e0 = torch.empty(0, dtype=idx)
                check(f"edge_grad E=0 {idx} {dtype}", sim.edge_grad(coef[:0], z, e0, e0, False),
                      cpu.edge_grad(coef[:0], z, e0, e0, True))
        nodes = torch.cat([torch.tensor([0, n // 2]), torch.randint(0, n, (60,))])
        for fanout, replace in [(-1, False), (3, False), (40, False), (200, True), (5, True)]:
            check(f"sample_adj {idx} fanout={fanout} replace={replace}",
                  sim.sample_adj(rowptr, col, nodes, fanout, replace, 5, 1),
                  cpu.sample_adj(rowptr, col, nodes, fanout, replace, 5, 1))
        s = torch.randint(0, n, (500,))
        d = torch.randint(0, n, (500,))
        check(f"csr_has_pairs {idx}", sim.csr_has_pairs(rowptr, col, s, d), cpu.csr_has_pairs(rowptr, col, s, d))
    print(f"sanitizer_checks: {'FAILED ' + str(len(failures)) if failures else 'all checks passed'}"
          f" ({args.device}, blocks={args.blocks}, seed={args.seed})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
