"""``selftest``: every usable backend on a device against the reference, forward and backward.

Meant as the first thing to run on a new machine (``scalevgae selftest``), above all on a GPU,
where the CUDA and Triton kernels run for the first time: small fresh random inputs (a hub row,
empty rows, repeated pairs, int32 and int64 indices, float32 and float64), every op, seconds.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from functools import partial
from typing import Callable, Optional, Sequence, Union

import torch
from torch import Tensor

from scalevgae.ops import dispatch

# Max error allowed per output dtype, relative to the largest reference value; integer and bool
# outputs (samples, membership) must be identical.
_TOL = {torch.float32: 1e-4, torch.float64: 1e-9}


@dataclass
class SelftestRow:
    """One (op, backend) check: ``max_err`` is max |out - ref| / max(1, max |ref|) over the
    forward and backward outputs of every input tried (0 for the exact integer ops)."""

    op: str
    backend: str
    ok: bool
    max_err: float
    detail: str = ""


def _err(out: Tensor, ref: Tensor) -> float:
    if out.shape != ref.shape:
        return float("inf")
    if out.numel() == 0:
        return 0.0
    if not ref.is_floating_point():
        return float((out != ref).sum())  # exact ops: the number of differing entries
    out, ref = out.double(), ref.double()
    return float((out - ref).abs().max()) / max(1.0, float(ref.abs().max()))


def _csr(n_dst: int, n_src: int, gen: torch.Generator, idx: torch.dtype) -> tuple[Tensor, Tensor]:
    """Random CSR: empty rows, repeated columns and a hub row 0 of ~3 n_src entries."""
    deg = torch.randint(0, 6, (n_dst,), generator=gen)
    deg[1::7] = 0
    deg[0] = 3 * n_src
    rowptr = torch.zeros(n_dst + 1, dtype=torch.long)
    torch.cumsum(deg, 0, out=rowptr[1:])
    col = torch.randint(0, n_src, (int(rowptr[-1]),), generator=gen)
    return rowptr.to(idx), col.to(idx)


def _fwd_bwd(fn: Callable[..., Tensor], inputs: Sequence[Tensor], gen: torch.Generator) -> list[Tensor]:
    """fn(*inputs) and the gradients of <fn(...), w> for a random w (one backward pass)."""
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*leaves)
    w = torch.randn(out.shape, generator=gen, dtype=torch.float64).to(out.device, out.dtype)
    grads = torch.autograd.grad((out * w).sum(), leaves)
    return [out.detach(), *grads]


def _cases(dev: torch.device, seed: int) -> dict[str, tuple[Sequence[str], Sequence[str], Callable]]:
    """op -> (backends that have it, compiled kernels it needs, run(backend) -> [tensors])."""
    from scalevgae.graph import Graph
    from scalevgae.ops import all_pairs, decode, propagate
    from scalevgae.ops import sample as sample_ops
    from scalevgae.sampling import membership, neighbor

    def gen():
        return torch.Generator().manual_seed(seed)

    def prop(backend: str, self_scale: bool) -> list[Tensor]:
        g, outs = gen(), []
        for idx, dtype, F in ((torch.int32, torch.float32, 7), (torch.int64, torch.float64, 64)):
            n_dst, n_src = 90, (120 if self_scale else 90)
            rowptr, col = _csr(n_dst, n_src, g, idx)
            x = torch.randn(n_src, F, generator=g, dtype=dtype)
            bias = torch.randn(F, generator=g, dtype=dtype)
            kw = dict(dst_scale=torch.rand(n_dst, generator=g, dtype=dtype) + 0.1,
                      src_scale=torch.rand(n_src, generator=g, dtype=dtype) + 0.1,
                      self_scale=torch.rand(n_dst, generator=g, dtype=dtype)) if self_scale else {}
            kw = {k: v.to(dev) for k, v in kw.items()}
            rowptr, col = rowptr.to(dev), col.to(dev)
            fn = partial(propagate.gcn_propagate, rowptr, col, activation="relu", backend=backend, **kw)
            outs += _fwd_bwd(lambda x, b, fn=fn: fn(x, bias=b), (x.to(dev), bias.to(dev)), g)
        return outs

    def edges(g: torch.Generator, n: int, E: int, idx: torch.dtype) -> tuple[Tensor, Tensor]:
        src, dst = torch.randint(0, n, (2, E), generator=g)
        src[: E // 4] = 0  # a hub
        dst[E // 4 : E // 3] = src[E // 4 : E // 3]  # self pairs
        return src.to(dev, idx), dst.to(dev, idx)

    def dec(backend: str, bce: bool, deterministic: bool) -> list[Tensor]:
        g, outs = gen(), []
        prev = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(deterministic)
        try:
            for idx, dtype, F in ((torch.int32, torch.float32, 5), (torch.int64, torch.float64, 32)):
                z = (torch.randn(80, F, generator=g, dtype=dtype) * 2).to(dev)  # some |logits| > 30
                src, dst = edges(g, 80, 400, idx)
                label = (torch.rand(400, generator=g) < 0.3).to(dev, dtype)
                if bce:
                    fn = partial(decode.edge_bce_loss, src=src, dst=dst, label=label, pos_weight=2.0, backend=backend)
                else:
                    fn = partial(decode.edge_logits, src=src, dst=dst, backend=backend)
                outs += _fwd_bwd(fn, (z,), g)
        finally:
            torch.use_deterministic_algorithms(prev)
        return outs

    def allpairs(backend: str) -> list[Tensor]:
        g = gen()
        graph = Graph.from_edge_index(torch.randint(0, 60, (2, 200), generator=g), num_nodes=60).to(dev)
        z = (torch.randn(60, 8, generator=g, dtype=torch.float64) * 0.5).to(dev)
        return _fwd_bwd(lambda z: all_pairs.all_pairs_bce_loss(z, graph.rowptr, graph.col, tile=16,
                                                               backend=backend), (z,), g)

    def graph(g: torch.Generator) -> Graph:
        ei = torch.randint(0, 300, (2, 1200), generator=g)
        ei[0, :400] = 0  # a hub
        return Graph.from_edge_index(ei, num_nodes=300).to(dev)

    def sample(backend: str) -> list[Tensor]:
        g, outs = gen(), []
        gr = graph(g)
        seeds = torch.randperm(300, generator=g)[:40].to(dev)
        for fanouts, replace in (([4, 3], False), ([-1, 2], False), ([40], False), ([5, 3], True)):
            sub = neighbor.sample_neighbors(gr, seeds, fanouts, replace=replace, backend=backend,
                                            generator=torch.Generator(device=dev).manual_seed(seed))
            outs.append(sub.n_id)
            for b in sub.blocks:
                outs += [b.rowptr.long(), b.col.long()]
        return outs

    def pairs(backend: str) -> list[Tensor]:
        g = gen()
        gr = graph(g)
        src, dst = edges(g, 300, 2000, torch.int64)
        known = gr.edge_index[:, :500]  # half the queries are edges
        src[:500], dst[:500] = known[0], known[1]
        return [membership.has_pairs(gr, src, dst, backend=backend)]

    edge_kernels = decode.KERNELS
    return {
        "gcn_propagate": (dispatch.BACKENDS, ("gcn_spmm",), lambda b: prop(b, False)),
        "gcn_propagate[self_scale]": (dispatch.BACKENDS, ("gcn_spmm",), lambda b: prop(b, True)),
        "edge_logits": (dispatch.BACKENDS, edge_kernels, lambda b: dec(b, False, False)),
        "edge_bce_loss": (dispatch.BACKENDS, edge_kernels, lambda b: dec(b, True, False)),
        "edge_bce_loss[deterministic]": (dispatch.BACKENDS, edge_kernels, lambda b: dec(b, True, True)),
        "all_pairs_bce_loss": (dispatch.BACKENDS, edge_kernels, allpairs),
        "sample_neighbors": (sample_ops.BACKENDS, ("sample_adj",), sample),
        "has_pairs": (sample_ops.BACKENDS, ("csr_has_pairs",), pairs),
    }


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def selftest(
    device: Optional[Union[str, torch.device]] = None,
    *,
    seed: Optional[int] = None,
    backends: Optional[Sequence[str]] = None,
    log: Optional[Callable[[str], None]] = print,
) -> list[SelftestRow]:
    """Check every usable backend on ``device`` against the reference, for every op.

    Args:
        device: "cpu", "cuda", ... (None: cuda if visible, else cpu).
        seed: input seed (None: a fresh one, printed so a failure can be replayed).
        backends: restrict to these backends (default: every one usable on the device).
        log: called with each table line (None: silent).

    Returns:
        One :class:`SelftestRow` per (op, backend); a backend an op lacks is left out, an
        unusable-but-requested one is a failed row.
    """
    dev = torch.device(device) if device is not None else _default_device()
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("selftest: no CUDA device visible (run it on a GPU machine, or with device='cpu')")
    seed = int(torch.randint(0, 2**31 - 1, ()).item()) if seed is None else int(seed)
    names = list(backends) if backends is not None else [
        b for b in dispatch.BACKENDS if b != "reference" and dispatch._status(b, dev.type).usable]
    say = log or (lambda s: None)
    t0 = time.perf_counter()
    say(f"scalevgae selftest on {dev} (seed {seed}); backends: {', '.join(names) or 'none'}")
    say(f"{'op':<30} {'backend':<9} {'result':<6} {'max error':>10}")
    rows = []
    for op, (supported, kernels, run) in _cases(dev, seed).items():
        ref = None
        for b in names:
            if b not in supported:
                continue
            try:
                dispatch.resolve(op, dev, b, supported=supported, kernels=kernels)
                if ref is None:
                    ref = run("reference")
                out = run(b)
                if len(out) != len(ref):
                    raise RuntimeError(f"{len(out)} outputs, the reference has {len(ref)}")
                errs = [(_err(o, r), _TOL.get(r.dtype, 0.0)) for o, r in zip(out, ref)]
                bad = [f"{e:.2e} > {t:g}" for e, t in errs if not e <= t]
                row = SelftestRow(op, b, not bad, max((e for e, _ in errs), default=0.0), ", ".join(bad[:2]))
            except Exception as e:  # a crash is a failed row, not the end of the test
                last = traceback.extract_tb(e.__traceback__)[-1]
                row = SelftestRow(op, b, False, float("nan"),
                                  f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
                                  f"({last.filename.rsplit('/', 1)[-1]}:{last.lineno})")
            rows.append(row)
            say(f"{op:<30} {b:<9} {'pass' if row.ok else 'FAIL':<6} {row.max_err:>10.2e}"
                + (f"  {row.detail}" if row.detail else ""))
    n_fail = sum(not r.ok for r in rows)
    say(f"{len(rows) - n_fail} passed, {n_fail} failed in {time.perf_counter() - t0:.1f} s")
    return rows
