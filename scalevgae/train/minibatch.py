"""Minibatch mode, isolated here: the LinkLoader factory and the per-batch loss.

A loader factory has ``scalevgae.data.LinkLoader``'s signature, ``(graph, x, pos_pairs, *,
batch_size, fanouts, neg_ratio, shuffle, device, generator, [shard, exclude, aggregate_input])``,
and yields batches with ``.blocks`` (input layer first), ``.x`` (features of the input nodes),
``.src``/``.dst`` (rows of the encoder output, i.e. local seed indices), ``.label`` (float) and
``.num_pos``; ``len(loader)``; ``state_dict()`` / ``load_state_dict()`` for its position.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch import Tensor

from scalevgae.graph import Graph
from scalevgae.train.objectives import sampled_loss

LoaderFactory = Callable[..., Any]


def make_loader(factory: Optional[LoaderFactory], graph: Graph, x: Any, pos_pairs: Tensor, *, batch_size: int,
                fanouts: tuple, neg_ratio: int, device: torch.device, seed: int,
                shard: tuple[int, int] = (0, 1), exclude: Optional[list[Graph]] = None,
                aggregate_input: bool = False, input_table: Optional[Tensor] = None) -> Any:
    """A shuffling LinkLoader over the training positives with its own seeded generator.

    shard: ``(rank, world)`` under data parallelism (the seed must be the same on all ranks).
    exclude: graphs whose edges are never drawn as negatives (the held-out positives).
    aggregate_input: the loader applies the first GCN layer's aggregation to the features (see
    ``LinkLoader``); only for models whose first layer aggregates the raw features.
    input_table: the loader's precomputed input aggregation, if the caller made it (``LinkLoader``)."""
    if factory is None:
        from scalevgae.data import LinkLoader as factory
    gen = torch.Generator().manual_seed(seed)
    extra: dict = {} if shard[1] == 1 else {"shard": tuple(shard)}  # custom factories need it only under DDP
    if exclude:
        extra["exclude"] = exclude
    if aggregate_input:
        extra["aggregate_input"] = True
    if input_table is not None:
        extra["input_table"] = input_table
    return factory(graph, x, pos_pairs, batch_size=batch_size, fanouts=list(fanouts), neg_ratio=neg_ratio,
                   shuffle=True, device=device, generator=gen, **extra)


def batch_loss(model: Any, batch: Any, *, self_weight: float, kl_weight: float, is_vgae: bool,
               autocast: Any) -> tuple[Tensor, int]:
    """Loss of one batch and the number of pairs it scored.

    z covers the batch's seed nodes (``blocks[-1].num_dst`` rows); the self-loop term and the
    KL are averaged over those seeds, matching the full-batch per-node means.
    """
    x = batch.x if batch.x.dtype == torch.float32 else batch.x.float()  # e.g. float64 numpy features
    with autocast():
        z = model.encode(x, batch.blocks)
    loss = sampled_loss(z, batch.src, batch.dst, batch.label, self_weight)
    if is_vgae:
        loss = loss + kl_weight * model.kl_loss()
    return loss, int(batch.src.numel())  # scored positive + negative pairs (the self terms not counted)
