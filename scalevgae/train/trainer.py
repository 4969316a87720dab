"""Trainer: full-batch and minibatch VGAE/GAE training with validation, early stopping,
checkpoint/resume, AMP, a progress bar and per-epoch ``metrics.jsonl``."""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
from torch import Tensor

from scalevgae import distributed as sdist
from scalevgae import reorder
from scalevgae._memory import release_free_memory
from scalevgae.data.split import LinkSplit
from scalevgae.graph import Graph
from scalevgae.metrics import link_scores, ranking_metric
from scalevgae.models import VGAE, build_model
from scalevgae.ops.decode import edge_logits
from scalevgae.sampling.aggregated import input_table, precomputes_input
from scalevgae.sampling.negative import negative_pairs
from scalevgae.train import minibatch
from scalevgae.train.checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from scalevgae.train.config import TrainConfig
from scalevgae.train.evaluation import ValidationSet, monitored
from scalevgae.train.objectives import all_pairs_loss, sampled_loss, self_loop_weight
from scalevgae.train.progress import phase, progress_bar

METRICS_NAME = "metrics.jsonl"
MINIBATCH_EVAL_STEPS = 25  # steps between minibatch validations by default


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda if available else cpu; a bare ``cuda`` gets the current device index."""
    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


@dataclass
class TrainResult:
    """What a finished run reports (the model holds the best validation weights)."""

    best_epoch: int
    best_val_auc: float
    best_val_ap: float
    epochs_run: int
    steps: int
    train_seconds: float
    train_pairs_per_s: float
    stopped_early: bool
    history: list = field(default_factory=list)
    out_of_time: bool = False  # the time budget ended the run
    mode: str = ""
    mode_reason: str = ""


class Trainer:
    """Trains a VGAE or GAE on ``split.train_graph`` and validates on ``split.val_*``.

    Args:
        config: a :class:`TrainConfig` (defaults resolved per mode).
        x: ``[N, F]`` float node features (a CPU tensor is moved to the device in full mode;
            minibatch mode hands it to the loader as is).
        split: the link split (train graph and edges, validation and test pairs).
        out_dir: where ``metrics.jsonl`` and ``checkpoint.pt`` go (None: nowhere).
        loader_factory: the LinkLoader class for minibatch mode (default: the package's, which
            then also applies the first GCN layer's parameter-free aggregation of the features
            in its background thread, ``aggregate_input=True``, unless ``dropout > 0``).
        perm: with ``config.reorder`` other than ``"none"``, the node order to train in
            (``perm[new_id] = old_id``, e.g. the one a run folder stored); default: computed
            from the training graph by ``scalevgae.reorder.node_order``.

    Node order (``config.reorder``): the training graph, features and every pair of the split
    are renumbered once here (:attr:`perm`; a memory-mapped x is permuted block by block into a
    temporary memory-mapped file, a tensor x is copied) and training runs in that order; the
    model's weights do not depend on it, and :meth:`embed` / :meth:`evaluate` take and return
    the caller's (original) node ids.

    Under ``torchrun`` (a process group initialised, e.g. by
    :func:`scalevgae.distributed.init_distributed`, before the Trainer is built) the model is
    wrapped in DistributedDataParallel and each rank trains on its shard of every global batch
    (``batch_size`` pairs per rank, ``batch_size * world`` per optimizer step; the learning rate
    is not scaled). Full mode: every rank computes the full-batch loss, with its own negative
    samples in the sampled objective; DDP averages the gradients. Evaluation runs on every rank
    on the same weights and rank 0's numbers are broadcast; only rank 0 writes metrics,
    checkpoints and the progress bar. See the README's "Multi-GPU and multi-node" section.
    """

    def __init__(self, config: TrainConfig, x: Any, split: LinkSplit, *, out_dir: Optional[str] = None,
                 loader_factory: Optional[Callable[..., Any]] = None, perm: Optional[Tensor] = None):
        n = split.train_graph.num_nodes
        self.cfg = cfg = config.resolved(n)
        self.mode_reason = config.choose_mode(n)[1]  # recorded in metrics.json by the CLI
        self.dist = sdist.current()
        self.device = resolve_device(cfg.device)
        self.split = split  # in the caller's node ids
        self.out_dir = out_dir
        if x is None or x.shape[0] != n:
            raise ValueError(f"x must have {n} rows (one per node), got {None if x is None else tuple(x.shape)}")
        self.perm: Optional[Tensor] = None  # perm[new_id] = old_id when training in another order
        self._inv: Optional[Tensor] = None
        if cfg.reorder != "none":
            with phase(f"renumbering nodes ({cfg.reorder})", cfg.progress and self.dist.is_main):
                if perm is None:
                    perm = reorder.node_order(split.train_graph, cfg.reorder)
                reorder.check_permutation(perm, n)
                self.perm, self._inv = perm.cpu(), reorder.inverse(perm.cpu())
                split, x = reorder.permute_split(split, self.perm), reorder.permute_rows(x, self.perm)
        self.graph: Graph = split.train_graph.to(self.device)
        self.full = cfg.mode == "full"
        self.x = torch.as_tensor(x).float().to(self.device) if self.full else x
        self.train_pos = split.train_pos.to(self.device)
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg.model, x.shape[1], cfg.hidden, cfg.latent, cfg.dropout).to(self.device)
        self.is_vgae = isinstance(self.model, VGAE)
        if cfg.optimizer == "adam":
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        else:
            self.optimizer = torch.optim.SGD(self.model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                             weight_decay=cfg.weight_decay)
        self.scheduler: Optional[Any] = None  # none by default; saved/restored if a caller sets one
        self.neg_gen = torch.Generator().manual_seed(cfg.seed + 1)
        if self.dist.enabled:  # per-rank dropout masks and negatives; same initial weights
            self._reseed_rank(0)
        self.kl_weight = cfg.kl_weight if cfg.kl_weight is not None else 1.0 / n
        self.self_weight = cfg.self_loop_weight if cfg.self_loop_weight is not None else self_loop_weight(self.graph)
        self.all_pairs = self.full and n <= cfg.full_max_nodes
        # Held-out positives (validation + test, both directions) are never trained as non-edges.
        held = torch.cat([split.val_pos, split.test_pos], 1) if cfg.exclude_heldout else None
        self.heldout_graph: Optional[Graph] = None
        self.heldout_pairs: Optional[Tensor] = None
        if held is not None and held.size(1) > 0:
            self.heldout_graph = Graph.from_edge_index(held, n, undirected=True)
            if self.all_pairs:  # only the all-pairs loss reads them (int64, 16 bytes per held-out pair)
                self.heldout_pairs = self.heldout_graph.edge_index.to(self.device)  # both directions
        self.loader = None
        # Our encoders' first layer is a GCN on the raw features; dropout on them would have to
        # come before the aggregation, so then the trainer aggregates.
        aggregate = loader_factory is None and cfg.dropout == 0
        table = None
        if (not self.full and self.dist.enabled
                and precomputes_input(split.train_graph, self.x, cfg.fanouts, aggregate_input=aggregate)):
            # The exact input hop's table (features-sized): one mapped copy per host, as the data.
            table = sdist.shared_on_host(self.dist, lambda: input_table(split.train_graph, self.x))
        if not self.full:
            # The loader samples from the graph where the split put it (CPU usually) and moves
            # each batch to the training device itself.
            self.loader = minibatch.make_loader(
                loader_factory, split.train_graph, self.x, split.train_pos, batch_size=cfg.batch_size,
                fanouts=cfg.fanouts, neg_ratio=cfg.neg_ratio, device=self.device, seed=cfg.seed + 2,
                shard=(self.dist.rank, self.dist.world_size),
                exclude=None if self.heldout_graph is None else [self.heldout_graph.to(split.train_graph.device)],
                aggregate_input=aggregate, input_table=table)
        self.steps_per_epoch = 1 if self.full else max(len(self.loader), 1)
        total = cfg.epochs * self.steps_per_epoch
        self.total_steps = min(total, cfg.steps) if cfg.steps else total
        self.epochs = math.ceil(self.total_steps / self.steps_per_epoch)
        # Validation every eval_every epochs (full) or eval_steps steps (minibatch; default
        # MINIBATCH_EVAL_STEPS: with weight averaging the validated iterate is smooth, and on large
        # graphs validation AUC plateaus within the first few hundred steps, so a plateau is seen
        # soon after it begins; README, "Time to quality").
        if self.full or cfg.eval_steps is None and cfg.eval_every > 1:
            self.eval_steps = cfg.eval_every * self.steps_per_epoch
        else:
            self.eval_steps = cfg.eval_steps or MINIBATCH_EVAL_STEPS
        self.val_set = ValidationSet(split.train_graph, x, split.val_pos, split.val_neg, num_pairs=cfg.eval_pairs,
                                     metric=split.metric, seed=cfg.seed + 3, device=self.device,
                                     table=getattr(getattr(self.loader, "sampler", None), "table", None))
        use_amp = cfg.amp == "bf16" or (cfg.amp == "auto" and self.device.type == "cuda")
        self._amp_device = self.device.type if use_amp else None
        self.state: dict[str, Any] = dict(
            epoch=0, global_step=0, batch_in_epoch=0, best_val_auc=-1.0, best_val_ap=-1.0, best_val_score=-1.0, best_epoch=-1,
            bad_evals=0, stopped_early=False, loss_sum=0.0, epoch_pairs=0, epoch_time=0.0, train_time=0.0,
            total_pairs=0, plateau_ref=-1.0, period_steps=0, wall_time=0.0, out_of_time=False)
        self.best_state: Optional[dict[str, Tensor]] = None
        # Averaged weights (cfg.ema_decay): what validation sees and what the run returns.
        self.ema_state: Optional[dict[str, Tensor]] = None
        if cfg.ema_decay:
            self.ema_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.history: list[dict[str, Any]] = []
        self.ddp: Optional[torch.nn.Module] = None
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(_LossModule(self), device_ids=ids)
        if cfg.progress and self.dist.is_main:
            print(f"scalevgae: {self.mode_reason}", file=sys.stderr)
        release_free_memory()  # the temporaries of the held-out graph and the validation blocks

    def _reseed_rank(self, step: int) -> None:
        """Per-rank torch RNG (dropout) and full-mode negative generator, from (seed, rank, step)."""
        base = (self.cfg.seed * 1_000_003 + self.dist.rank * 7919 + step * 104_729) % (2**62)
        torch.manual_seed(base + 17)
        self.neg_gen.manual_seed(base + 1)

    # ---- objective ----
    def _autocast(self) -> Any:
        if self._amp_device is None:
            return contextlib.nullcontext()
        return torch.autocast(self._amp_device, dtype=torch.bfloat16)

    def _full_loss(self) -> tuple[Tensor, int]:
        with self._autocast():
            z = self.model.encode(self.x, self.graph)
        n = self.graph.num_nodes
        if self.all_pairs:
            loss, pairs = all_pairs_loss(z, self.graph, self.heldout_pairs), n * n
        else:
            pos = self.train_pos
            held = None if self.heldout_graph is None else [self.heldout_graph.to(self.device)]
            neg = negative_pairs(self.graph, self.cfg.neg_ratio * pos.size(1), exclude=held, generator=self.neg_gen)
            src, dst = torch.cat([pos[0], neg[0]]), torch.cat([pos[1], neg[1]])
            label = torch.cat([torch.ones(pos.size(1), device=z.device), torch.zeros(neg.size(1), device=z.device)])
            loss, pairs = sampled_loss(z, src, dst, label, self.self_weight), src.numel()
        if self.is_vgae:
            loss = loss + self.kl_weight * self.model.kl_loss()
        return loss, pairs

    def _batches(self) -> Any:
        return iter([None]) if self.full else iter(self.loader)

    def _loss(self, batch: Any) -> tuple[Tensor, int]:
        if batch is None:
            return self._full_loss()
        if batch.label.numel() == 0:  # an empty shard of the last global batch: zero gradients
            return sum(p.sum() for p in self.model.parameters()) * 0.0, 0
        return minibatch.batch_loss(self.model, batch, self_weight=self.self_weight, kl_weight=self.kl_weight,
                                    is_vgae=self.is_vgae, autocast=self._autocast)

    def _step(self, batch: Any) -> tuple[float, int]:
        if self.dist.enabled and self.ddp is None:
            raise RuntimeError("this Trainer was closed (close()); it cannot train on in a process group")
        self.optimizer.zero_grad(set_to_none=True)
        if self.ddp is not None:  # through DDP's forward so its backward all-reduces (averages) grads
            loss = self.ddp(batch)
            pairs = self._last_pairs
        else:
            loss, pairs = self._loss(batch)
        loss.backward()
        self.optimizer.step()
        if self.ema_state is not None:
            with torch.no_grad():
                d = self.cfg.ema_decay
                for k, v in self.model.state_dict().items():
                    if v.is_floating_point():
                        self.ema_state[k].mul_(d).add_(v, alpha=1 - d)
                    else:
                        self.ema_state[k].copy_(v)
        if self.scheduler is not None:
            self.scheduler.step()
        return float(loss.detach()), pairs

    def close(self) -> None:
        """Release the DistributedDataParallel wrapper, which holds the process group.

        Call it before ``scalevgae.distributed.shutdown_distributed()`` when the trainer stays
        alive after training (the model, evaluation and checkpoints keep working; training
        does not). Without a process group it does nothing.
        """
        self.ddp = None

    # ---- evaluation ----
    @torch.no_grad()
    def embed(self) -> Tensor:
        """Full-graph latent means ``[N, latent]`` on the training graph (no sampling); row ``k`` is
        the caller's node ``k`` (the original order, also with ``reorder``)."""
        z = self._embed()
        return z if self._inv is None else z.index_select(0, self._inv.to(z.device).long())

    @torch.no_grad()
    def _embed(self) -> Tensor:
        """:meth:`embed` in the training order (rows ``perm[i]`` of the original)."""
        release_free_memory()  # the pages of freed training batches, before the N-row outputs
        return self.model.embed(self.x, self.graph, batch_size=self.cfg.embed_batch_size, device=self.device)

    @torch.no_grad()
    def evaluate(self, pos: Tensor, neg: Tensor, z: Optional[Tensor] = None) -> tuple[float, float]:
        """(AUC, AP) of held-out pairs ``pos [2, P]`` vs ``neg [2, Q]``, scored on mu."""
        m = self.evaluate_metrics(pos, neg, z=z, metric=None)
        return m["auc"], m["ap"]

    @torch.no_grad()
    def evaluate_metrics(self, pos: Tensor, neg: Tensor, z: Optional[Tensor] = None,
                         metric: Optional[str] = "split") -> dict[str, float]:
        """``{"auc", "ap"}`` plus the official ranking metric (e.g. ``"hits@50"``, ``"mrr"``) of
        held-out pairs; ``metric="split"`` takes it from the split (None for random splits)."""
        metric = self.split.metric if metric == "split" else metric
        z = self.embed() if z is None else z
        pos, neg = pos.to(z.device), neg.to(z.device)
        ps, ns = edge_logits(z, pos[0], pos[1]), edge_logits(z, neg[0], neg[1])
        auc, ap = link_scores(ps, ns)
        out = {"auc": auc, "ap": ap}
        if metric:
            out[metric] = ranking_metric(metric, ps, ns)
        return out

    # ---- checkpoints ----
    def checkpoint_path(self) -> Optional[str]:
        return None if self.out_dir is None else os.path.join(self.out_dir, CHECKPOINT_NAME)

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "rng": rng_state({"neg": self.neg_gen}),
            "loader": None if self.loader is None else self.loader.state_dict(),
            "trainer": dict(self.state),
            "best_state": self.best_state,
            "ema_state": self.ema_state,
            "history": self.history,
            "config": self.cfg.to_dict(),
            "world_size": self.dist.world_size,
            "perm": self.perm,
        }

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        saved = ckpt.get("perm")
        if (saved is None) != (self.perm is None) or (saved is not None and not torch.equal(saved.cpu(), self.perm)):
            raise ValueError("the checkpoint was trained in another node order (reorder "
                             f"{ckpt.get('config', {}).get('reorder', 'none')}); resume with the same reorder and data")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None and ckpt.get("scheduler") is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        set_rng_state(ckpt["rng"], {"neg": self.neg_gen})
        if self.loader is not None and ckpt.get("loader") is not None:
            self.loader.load_state_dict(ckpt["loader"])
        self.state.update(ckpt["trainer"])
        self.best_state = ckpt.get("best_state")
        if self.ema_state is not None:
            self.ema_state = ckpt["ema_state"]
        self.history = list(ckpt.get("history") or [])
        if int(ckpt.get("world_size", 1)) != self.dist.world_size and self.loader is not None:
            # Another number of ranks: same epoch and pair position, this world's step numbering.
            st, left = self.state, self.loader.batches_left()
            st["batch_in_epoch"] = max(0, self.steps_per_epoch - left)
            st["global_step"] = st["epoch"] * self.steps_per_epoch + st["batch_in_epoch"]
        if self.dist.enabled:
            self._reseed_rank(self.state["global_step"])

    def _broadcast(self, values: Any) -> Any:
        """Rank 0's value of a small picklable object on every rank (identity in one process)."""
        if not self.dist.enabled:
            return values
        box = [values]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def save(self) -> None:
        path = self.checkpoint_path()
        if hasattr(self, "_fit_t0"):
            self.state["wall_time"] = self._elapsed()
        if path is not None and self.dist.is_main:
            save_checkpoint(path, self.state_dict())

    def _log(self, row: dict[str, Any]) -> None:
        self.history.append(row)
        if self.out_dir is not None and self.dist.is_main:
            os.makedirs(self.out_dir, exist_ok=True)
            with open(os.path.join(self.out_dir, METRICS_NAME), "a") as f:
                f.write(json.dumps(row) + "\n")

    def _truncate_metrics(self) -> None:
        """On resume, drop metrics lines written after the checkpoint was taken."""
        if self.out_dir is None or not self.dist.is_main:
            return
        path = os.path.join(self.out_dir, METRICS_NAME)
        with open(path, "w") as f:
            for row in self.history:
                f.write(json.dumps(row) + "\n")

    # ---- loop ----
    def _elapsed(self) -> float:
        """Wall-clock seconds of fit() so far, over all resumed calls (training + evaluation)."""
        return self._wall0 + time.perf_counter() - self._fit_t0

    def _out_of_time(self) -> bool:
        return self.cfg.time_budget is not None and self._elapsed() >= self.cfg.time_budget

    def _done(self) -> bool:
        return bool(self.state["stopped_early"] or self.state["out_of_time"])

    def fit(self, *, resume: bool = False, max_steps_this_call: Optional[int] = None,
            on_step: Optional[Callable[[int], None]] = None) -> Optional[TrainResult]:
        """Train until the validation score (``monitor``) plateaus (``patience``/``min_delta``), the
        configured epochs/steps are done or ``time_budget`` is spent; restore the best weights.

        resume: continue from ``out_dir/checkpoint.pt`` (same config and seed) and end with the
        same weights as an uninterrupted run (the time budget counts the earlier calls' time).
        max_steps_this_call: return None after this many optimizer steps, as if the process
        were killed (for tests and time-boxed jobs).
        on_step: called with the global step after every optimizer step (e.g. to score the
        model along the way); its time is not counted as step time.
        """
        cfg, st = self.cfg, self.state
        if resume:
            path = self.checkpoint_path()
            if path is None:
                raise ValueError("resume needs out_dir (where checkpoint.pt lives)")
            self.load_state_dict(load_checkpoint(path, map_location=self.device))
            self._truncate_metrics()
        self._fit_t0, self._wall0 = time.perf_counter(), st["wall_time"]
        # A resumed run gets the budget of this call's config (rank 0's clock decides).
        st["out_of_time"] = self._broadcast(self._out_of_time())
        bar = progress_bar(cfg.progress and self.dist.is_main, self.total_steps, st["global_step"],
                           every=cfg.progress_every)
        steps_here = 0
        try:
            while st["epoch"] < self.epochs and not self._done():
                if st["batch_in_epoch"] < self.steps_per_epoch and st["global_step"] < self.total_steps:
                    self.model.train()
                    t0 = time.perf_counter()  # step time includes waiting for the batch
                    for batch in self._batches():
                        loss, pairs = self._step(batch)
                        if self.device.type == "cuda":
                            torch.cuda.synchronize(self.device)
                        dt = time.perf_counter() - t0
                        st["global_step"] += 1
                        st["batch_in_epoch"] += 1
                        st["period_steps"] += 1
                        st["loss_sum"] += loss
                        st["epoch_pairs"] += pairs
                        st["epoch_time"] += dt
                        st["train_time"] += dt
                        st["total_pairs"] += pairs
                        steps_here += 1
                        if bar is not None:
                            bar.update(1)
                            bar.set_postfix(loss=f"{loss:.4f}", pairs_s=f"{pairs / max(dt, 1e-9):.3g}")
                        epoch_end = (st["batch_in_epoch"] >= self.steps_per_epoch
                                     or st["global_step"] >= self.total_steps)
                        # Ranks decide on time together, at evaluations (_end_period broadcasts).
                        late = not self.dist.enabled and self._out_of_time()
                        if not epoch_end and (st["global_step"] % self.eval_steps == 0 or late):
                            self._end_period(epoch_end=False)
                        if cfg.checkpoint_every and st["global_step"] % cfg.checkpoint_every == 0:
                            self.save()
                        if on_step is not None:
                            on_step(st["global_step"])
                        if max_steps_this_call is not None and steps_here >= max_steps_this_call:
                            return None
                        if epoch_end or self._done():
                            break
                        t0 = time.perf_counter()
                    batch = None  # not held through the validation's full-graph inference
                if not self._done():
                    self._end_period(epoch_end=True)
        finally:
            if bar is not None:
                bar.close()
        if st["out_of_time"] or cfg.checkpoint_every:
            self.save()  # the run ends checkpointed (resume with a larger budget continues it)
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        elif self.ema_state is not None:
            self.model.load_state_dict(self.ema_state)
        return TrainResult(
            best_epoch=st["best_epoch"], best_val_auc=st["best_val_auc"], best_val_ap=st["best_val_ap"],
            epochs_run=st["epoch"], steps=st["global_step"], train_seconds=st["train_time"],
            train_pairs_per_s=st["total_pairs"] / max(st["train_time"], 1e-9), stopped_early=st["stopped_early"],
            history=list(self.history), out_of_time=st["out_of_time"], mode=cfg.mode, mode_reason=self.mode_reason)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Validation ``{"auc", "ap"}`` (plus the split's official metric, e.g. ``"hits@50"``) of the
        current (averaged) weights, as the stopping rule sees it."""
        with _swapped(self.model, self.ema_state):
            return self.val_set.score(self.model, self._embed)

    def _end_period(self, *, epoch_end: bool) -> None:
        """Log the steps since the last row; validate and apply the stopping rules when due.

        A row ends every epoch and, in minibatch mode, every ``eval_steps`` steps within one
        (its ``epoch`` is then fractional)."""
        cfg, st = self.cfg, self.state
        ep, spe = st["epoch"], self.steps_per_epoch
        nb = max(st["period_steps"], 1)
        # Logged over all ranks: mean loss, pairs of all ranks per second of rank time.
        loss = sdist.all_reduce_mean(st["loss_sum"] / nb, self.dist)
        pairs = sdist.all_reduce_mean(float(st["epoch_pairs"]), self.dist) * self.dist.world_size
        row: dict[str, Any] = dict(epoch=ep + 1 if epoch_end else round(ep + st["batch_in_epoch"] / spe, 4),
                                   step=st["global_step"], loss=loss, epoch_seconds=st["epoch_time"],
                                   pairs_per_s=pairs / max(st["epoch_time"], 1e-9))
        last = st["global_step"] >= self.total_steps or (epoch_end and ep + 1 >= self.epochs)
        # Same decision on every rank: rank 0's clock.
        late = self._broadcast(self._out_of_time()) if self.dist.enabled else self._out_of_time()
        if st["global_step"] % self.eval_steps == 0 or last or late:
            # Same weights on every rank; rank 0's numbers decide (early stopping stays in step).
            weights = self.ema_state if self.ema_state is not None else self.model.state_dict()
            m = self._broadcast(self.validate())
            auc, ap = m["auc"], m["ap"]
            row.update({f"val_{k}": v for k, v in m.items()})
            # Model selection and the plateau rule on the dataset's official metric when it defines
            # one (OGB), else cfg.monitor (checkpoints from before best_val_score existed selected on AUC).
            score = m[self.split.metric] if self.split.metric else monitored(cfg.monitor, m)
            if score > st.setdefault("best_val_score", -1.0 if self.split.metric else st["best_val_auc"]):
                st.update(best_val_score=score, best_val_auc=auc, best_val_ap=ap, best_epoch=row["epoch"])
                self.best_state = {k: v.detach().clone() for k, v in weights.items()}
            if score - cfg.min_delta > st["plateau_ref"]:  # progress: the plateau clock restarts
                st.update(plateau_ref=score, bad_evals=0)
            else:
                st["bad_evals"] += 1
                if cfg.patience and st["bad_evals"] >= cfg.patience:  # 0: never
                    st["stopped_early"] = True
            st["out_of_time"] = late
        st["wall_time"] = self._elapsed()
        row["elapsed_s"] = st["wall_time"]
        self._log(row)
        st.update(loss_sum=0.0, epoch_pairs=0, epoch_time=0.0, period_steps=0)
        if epoch_end:
            st.update(epoch=ep + 1, batch_in_epoch=0)


@contextlib.contextmanager
def _swapped(model: torch.nn.Module, weights: Optional[dict[str, Tensor]]) -> Any:
    """Run the block with ``weights`` loaded into ``model`` (no-op for None), then restore."""
    if weights is None:
        yield
        return
    current = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(weights)
    try:
        yield
    finally:
        model.load_state_dict(current)


class _LossModule(torch.nn.Module):
    """The trainer's loss as a module whose forward DDP can wrap (the model is its only child)."""

    def __init__(self, trainer: Trainer):
        super().__init__()
        self.model = trainer.model
        # A weak reference: trainer -> DDP -> this module -> trainer would be a cycle, and a
        # trainer freed only by the cyclic GC keeps the process group alive for that long.
        self._trainer = weakref.ref(trainer)

    def forward(self, batch: Any) -> Tensor:
        trainer = self._trainer()
        assert trainer is not None, "the Trainer of this DDP wrapper is gone"
        loss, trainer._last_pairs = trainer._loss(batch)
        return loss
