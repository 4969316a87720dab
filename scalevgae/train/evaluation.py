"""Validation whose cost fits the graph: a fixed seeded subset of the validation pairs scored
through their exact (unsampled) 2-hop blocks, or all pairs through full-graph inference."""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch import Tensor

from scalevgae.data.features import gather_rows
from scalevgae.graph import Graph
from scalevgae.metrics import link_scores, ranking_metric
from scalevgae.ops.decode import edge_logits
from scalevgae.sampling import sample_neighbors
from scalevgae.sampling.aggregated import aggregates_from, sample_aggregated, sample_precomputed
from scalevgae.sampling.neighbor import draw_seed

# Use the blocks only while their input layer has at most this share of the graph's edges:
# beyond it full-graph inference costs about the same and scores every pair.
MAX_BLOCK_EDGE_SHARE = 0.5


def monitored(monitor: str, metrics: dict[str, float]) -> float:
    """The validation score of ``TrainConfig.monitor`` ("auc+ap": the mean of the two) from
    :meth:`ValidationSet.score`'s metrics."""
    return (metrics["auc"] + metrics["ap"]) / 2 if monitor == "auc+ap" else metrics[monitor]


def _subset(pairs: Tensor, k: int, gen: torch.Generator) -> Tensor:
    if pairs.size(1) <= k:
        return pairs
    return pairs[:, torch.randperm(pairs.size(1), generator=gen)[:k].sort().values.to(pairs.device)]


class ValidationSet:
    """The validation pairs and how they are scored.

    Args:
        graph: the training graph (CPU or the device).
        x: ``[N, F]`` features (tensor or numpy array / memmap).
        pos, neg: ``[2, P]`` / ``[2, Q]`` validation pairs.
        num_pairs: keep at most this many positive and as many negative pairs (a seeded subset;
            0: all). With a subset the pairs' 2-hop blocks are built once with fanout -1 (every
            neighbor, so the encoder's output on them equals full-graph inference) and reused
            (with x a tensor on the graph's device, the first block's aggregation of x is applied
            then and ``blocks[0]`` is an :class:`~scalevgae.sampling.aggregated.AggregatedBlock`);
            if they hold more than ``MAX_BLOCK_EDGE_SHARE`` of the graph's edges, full inference
            is used instead (and then all pairs are scored).
        seed: seeds the subset.
        metric: the split's official ranking metric (``"hits@K"``, ``"mrr"``) or None. An official
            metric is defined over all the split's negatives, so it is never computed on a subset.
        table: :func:`~scalevgae.sampling.aggregated.input_table` of ``graph`` and ``x`` if one
            exists (the loader's, with fanout -1 at the input layer): the subset's input
            aggregation is then read from it instead of computed again.

    ``self.subset`` tells which way was chosen.
    """

    def __init__(self, graph: Graph, x: Any, pos: Tensor, neg: Tensor, *, num_pairs: int, seed: int,
                 device: torch.device, metric: Optional[str] = None, table: Optional[Tensor] = None):
        self.pos, self.neg, self.device, self.metric = pos, neg, device, metric
        self.subset = False
        if metric or num_pairs <= 0 or max(pos.size(1), neg.size(1)) <= num_pairs:
            return
        gen = torch.Generator().manual_seed(seed)
        p, q = _subset(pos.cpu(), num_pairs, gen), _subset(neg.cpu(), num_pairs, gen)
        seeds, inv = torch.unique(torch.cat([p, q], 1).reshape(-1), return_inverse=True)
        seeds = seeds.to(graph.rowptr.device)
        # The input layer's edges are all edges of the seeds' 1-hop nodes: count them before
        # building the 2-hop blocks (hundreds of MB at 10^6 nodes when they are then not used).
        # Fanout -1 samples nothing at random; one draw of the global RNG either way, as always.
        rng = torch.Generator(graph.rowptr.device).manual_seed(draw_seed())
        hop1 = sample_neighbors(graph, seeds, [-1], generator=rng).n_id
        if int(graph.degree()[hop1].sum()) > MAX_BLOCK_EDGE_SHARE * graph.num_edges:
            return
        del hop1
        self.subset = True
        if table is not None:
            sub, y = sample_precomputed(graph, seeds, [-1, -1], table, generator=rng)
            self.x = y.to(device=device, dtype=torch.float32)
        elif aggregates_from(x, graph):
            # Our encoders' first layer in eval mode is Â X W (+ b): its aggregation of the fixed
            # features is done once here, straight from x by global id, so neither the outer
            # hop's rows (at 10^7 nodes 9·10^6 of them, 2.2 GiB) nor its block are ever stored.
            sub, y = sample_aggregated(graph, seeds, [-1, -1], x, generator=rng)
            self.x = y.to(device=device, dtype=torch.float32)
        else:  # numpy / memmap features, or on another device: gather the outer hop's rows
            sub = sample_neighbors(graph, seeds, [-1, -1], generator=rng)
            self.x = gather_rows(x, sub.n_id.cpu(), dtype=torch.float32).to(device)
        # n_id lists the seeds first, in the order given: pair endpoints index its first rows.
        local = inv.reshape(2, -1)
        self.pos, self.neg = local[:, : p.size(1)].to(device), local[:, p.size(1):].to(device)
        self.blocks = [b.to(device) for b in sub.blocks]
        self.n_id = sub.n_id.to(device)

    @torch.no_grad()
    def score(self, model: torch.nn.Module, embed: Callable[[], Tensor]) -> dict[str, float]:
        """``{"auc", "ap"}`` (and the official metric, if any) on mu: through the cached blocks, or
        ``embed()`` (full inference)."""
        if not self.subset:
            z = embed()
            pos, neg = self.pos.to(z.device), self.neg.to(z.device)
        else:
            was = model.training
            model.eval()
            try:
                z = model.encode(self.x, self.blocks)  # VGAE in eval mode: mu
            finally:
                model.train(was)
            pos, neg = self.pos, self.neg
        ps, ns = edge_logits(z, pos[0], pos[1]), edge_logits(z, neg[0], neg[1])
        auc, ap = link_scores(ps, ns)
        out = {"auc": auc, "ap": ap}
        if self.metric:
            out[self.metric] = ranking_metric(self.metric, ps, ns)
        return out

    def global_pairs(self) -> tuple[Tensor, Tensor]:
        """The scored ``(pos, neg)`` pairs in global node ids."""
        if not self.subset:
            return self.pos, self.neg
        return self.n_id[self.pos], self.n_id[self.neg]
