"""Negative (non-edge) pair sampling with exact counts and no dense masks."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from scalevgae.graph import Graph
from scalevgae.sampling.membership import _has_pairs

_METHODS = ("uniform", "degree")


def negative_pairs(
    graph: Graph,
    num: int,
    *,
    method: str = "uniform",
    exclude_edges: bool = True,
    exclude: Optional[Sequence[Graph]] = None,
    generator: Optional[torch.Generator] = None,
    max_rounds: int = 100,
) -> Tensor:
    """Sample exactly ``num`` node pairs ``[2, num]`` (int64, on the graph's device).

    CPU and CUDA graphs alike; the pairs are drawn with ``generator`` on its device (the
    graph's device if None) and tested on the graph's device.

    Args:
        graph: the graph whose edges are rejected (CPU or CUDA).
        num: number of pairs to return, exactly.
        method: "uniform" (both ends uniform over nodes) or "degree" (both ends drawn with
            probability ∝ degree + 1).
        exclude_edges: reject pairs that are stored entries of ``graph`` or of any graph in
            ``exclude`` (e.g. the full graph when ``graph`` is the training graph), and self
            pairs. The membership test is a binary search per CSR row; rejected pairs are
            redrawn until exactly ``num`` remain.
        exclude: more graphs (same nodes, same device) whose edges are rejected too.
        generator: the random source (its device is where pairs are drawn).
        max_rounds: give up with a RuntimeError after this many redraw rounds (a graph so
            dense that non-edges are rare).
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if num < 0:
        raise ValueError(f"num must be non-negative, got {num}")
    n = graph.num_nodes
    device = graph.device
    if num == 0:
        return torch.empty(2, 0, dtype=torch.long, device=device)
    if n == 0:
        raise ValueError("cannot draw pairs from a graph without nodes")
    if n < 2 and exclude_edges:
        raise ValueError("a graph with fewer than 2 nodes has no non-self pairs")
    graphs = [graph] + list(exclude or [])
    for i, g in enumerate(graphs[1:]):
        if g.num_nodes != n:
            raise ValueError(f"exclude[{i}] has {g.num_nodes} nodes, the graph has {n}")
        if g.device != device:
            raise ValueError(f"exclude[{i}] is on {g.device}, the graph is on {device}")
    # Draw where the generator lives (the graph's device without one), test on the graph's device.
    gen_device = generator.device if generator is not None else device
    if method == "degree":
        weights = (graph.degree() + 1).double().to(gen_device)
    out_src, out_dst, have = [], [], 0
    accept = 1.0  # running acceptance rate: sizes the next draw
    for _ in range(max_rounds):
        want = num - have
        draw = int(want / max(accept, 0.01) * 1.1) + 16
        if method == "uniform":
            s = torch.randint(0, n, (draw,), generator=generator, device=gen_device)
            d = torch.randint(0, n, (draw,), generator=generator, device=gen_device)
        else:
            s = torch.multinomial(weights, draw, replacement=True, generator=generator)
            d = torch.multinomial(weights, draw, replacement=True, generator=generator)
        s, d = s.to(device), d.to(device)
        if exclude_edges:
            keep = s != d
            for g in graphs:
                keep &= ~_has_pairs(g, s, d)
            s, d = s[keep], d[keep]
            accept = max(s.numel(), 1) / draw
        s, d = s[:want], d[:want]
        out_src.append(s)
        out_dst.append(d)
        have += s.numel()
        if have >= num:
            return torch.stack([torch.cat(out_src), torch.cat(out_dst)])
    raise RuntimeError(f"could not draw {num} non-edge pairs in {max_rounds} rounds (graph too dense?)")
