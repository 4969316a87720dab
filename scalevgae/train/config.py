"""TrainConfig: every knob of a training run, with graph-derived defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

MODES = ("full", "minibatch")
MODELS = ("vgae", "gae")
OPTIMIZERS = ("adam", "sgd")


@dataclass
class TrainConfig:
    """Configuration of a VGAE/GAE training run.

    Objective (see ``scalevgae.train.objectives``):
      * ``mode="full"`` with ``num_nodes <= full_max_nodes``: the paper's exact loss, the
        weighted BCE over all N² pairs of ``A + I`` with ``pos_weight = (N² - E) / E`` and
        Kipf's ``norm = N² / (2 (N² - E))`` (E = stored directed training edges), through
        ``scalevgae.ops.all_pairs_bce_loss``. Above ``full_max_nodes`` (default 20 000: 4·10^8
        pairs per step) full mode switches to sampled negatives.
      * Sampled negatives (full mode above the size limit, and minibatch mode): the unbiased
        estimate of the same loss, ``0.5 (mean_pos + mean_neg + w_self mean_self)`` with
        ``neg_ratio`` uniform non-edges per positive and the self-loop positive term
        ``w_self = N / E`` (what the all-pairs loss gives the diagonal of ``A + I``).
      * VGAE's KL: ``kl_weight * mean_i KL_i`` with ``kl_weight = 1 / N`` in every mode (Kipf's
        ``0.5 / N * mean(sum(...))``); a minibatch averages KL_i over its seed nodes.

    ``None`` fields take mode-dependent defaults in :meth:`resolved`: 200 epochs and lr 0.01
    (full, Kipf's), 100 epochs and lr 0.001 (minibatch: many steps per epoch need a lower
    rate); ``neg_ratio`` 5.

    Held-out edges (``exclude_heldout``, default True): the validation and test positives are
    never trained as non-edges. Sampled negatives reject them (besides the training edges), and
    the all-pairs loss drops their (negative) terms, an exact O(E_heldout) correction; with
    ``exclude_heldout=False`` the all-pairs loss is the paper's, in which held-out edges are
    zeros of the training adjacency like any other non-edge.

    Weight averaging (``ema_decay``, default 0.95 in full mode, off in minibatch mode): validation,
    the restored best weights and the saved model use an exponential moving average of the
    iterates, ``w_ema <- d w_ema + (1 - d) w`` after every optimizer step (Polyak averaging; on
    Cora it adds ~0.3 AUC / AP to every full-mode run over 10 seeds). Off in minibatch mode, where
    steps are many and noisy-but-small and an average lags the early, fast-moving iterates.

    Early stopping: validation AUC every ``eval_every`` epochs; stop after ``patience`` epochs
    without improvement (None: never) and always restore the best-validation weights. The
    patience is long (100) because small validation sets are noisy (Cora: 263 edges) and a
    short patience stops on noise.
    """

    model: str = "vgae"
    mode: str = "full"
    hidden: int = 32
    latent: int = 16
    dropout: float = 0.0
    epochs: Optional[int] = None
    steps: Optional[int] = None
    lr: Optional[float] = None
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    neg_ratio: Optional[int] = None
    self_loop_weight: Optional[float] = None
    kl_weight: Optional[float] = None
    full_max_nodes: int = 20000
    exclude_heldout: bool = True
    ema_decay: Optional[float] = None
    batch_size: int = 512
    fanouts: tuple = (10, 5)
    patience: Optional[int] = 100
    eval_every: int = 1
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    checkpoint_every: int = 0
    embed_batch_size: int = 65536
    progress: bool = True

    def validate(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.amp not in ("auto", "bf16", "off"):
            raise ValueError(f"amp must be 'auto', 'bf16' or 'off', got {self.amp!r}")
        for name in ("hidden", "latent", "batch_size", "eval_every", "full_max_nodes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("epochs", "steps", "neg_ratio", "patience"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ValueError(f"{name} must be positive, got {v}")
        if self.ema_decay is not None and not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1) or None, got {self.ema_decay}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.mode == "minibatch" and len(self.fanouts) != 2:
            raise ValueError(f"the two-layer encoders need two fanouts, got {tuple(self.fanouts)}")

    def resolved(self) -> TrainConfig:
        """A copy with the mode-dependent defaults filled in."""
        self.validate()
        full = self.mode == "full"
        c = dataclasses.replace(self, fanouts=tuple(int(f) for f in self.fanouts))
        if c.epochs is None:
            c.epochs = 200 if full else 100
        if c.lr is None:
            c.lr = 0.01 if full else 0.001
        if c.ema_decay is None and full:
            c.ema_decay = 0.95
        if c.neg_ratio is None:
            c.neg_ratio = 5
        return c

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["fanouts"] = list(self.fanouts)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if "fanouts" in kw:
            kw["fanouts"] = tuple(kw["fanouts"])
        return cls(**kw)
