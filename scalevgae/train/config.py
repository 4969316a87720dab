"""TrainConfig: every knob of a training run, with graph-derived defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

MODES = ("auto", "full", "minibatch")
MODELS = ("vgae", "gae")
OPTIMIZERS = ("adam", "sgd")
REORDERS = ("none", "degree", "rcm")
MONITORS = ("auc+ap", "auc", "ap")


@dataclass
class TrainConfig:
    """Configuration of a VGAE/GAE training run.

    Objective (see ``scalevgae.train.objectives``):
      * ``mode="full"`` with ``num_nodes <= full_max_nodes``: the paper's exact loss, the
        weighted BCE over all N² pairs of ``A + I`` with ``pos_weight = (N² - E) / E`` and
        Kipf's ``norm = N² / (2 (N² - E))`` (E = stored directed training edges), through
        ``scalevgae.ops.all_pairs_bce_loss``. Above ``full_max_nodes`` (default 50 000: 2.5·10^9
        pairs per step, ~1.8 s on 2 CPU cores: benchmarks/bench_full_epoch.py) full mode switches
        to sampled negatives.
      * Sampled negatives (full mode above the size limit, and minibatch mode): the unbiased
        estimate of the same loss, ``0.5 (mean_pos + mean_neg + w_self mean_self)`` with
        ``neg_ratio`` uniform non-edges per positive and the self-loop positive term
        ``w_self = N / E`` (what the all-pairs loss gives the diagonal of ``A + I``).
      * VGAE's KL: ``kl_weight * mean_i KL_i`` with ``kl_weight = 1 / N`` in every mode (Kipf's
        ``0.5 / N * mean(sum(...))``); a minibatch averages KL_i over its seed nodes.

    ``None`` fields take mode-dependent defaults in :meth:`resolved`: 200 epochs (full, Kipf's)
    or 100 (minibatch), lr 0.01 in both (Kipf's; minibatch's iterate noise at that rate is
    averaged out by ``ema_decay``), ``neg_ratio`` 5.

    Held-out edges (``exclude_heldout``, default True): the validation and test positives are
    never trained as non-edges. Sampled negatives reject them (besides the training edges), and
    the all-pairs loss drops their (negative) terms, an exact O(E_heldout) correction; with
    ``exclude_heldout=False`` the all-pairs loss is the paper's, in which held-out edges are
    zeros of the training adjacency like any other non-edge.

    Weight averaging (``ema_decay``, default 0.95 in full mode, 0.99 in minibatch mode): validation,
    the restored best weights and the saved model use an exponential moving average of the
    iterates, ``w_ema <- d w_ema + (1 - d) w`` after every optimizer step (Polyak averaging; on
    Cora it adds ~0.3 AUC / AP to every full-mode run over 10 seeds). Minibatch mode averages over
    ~100 steps: at lr 0.01 its single iterates wander by ±0.006 validation AUC between validations
    (README, "Time to quality"), the average does not, and lr 0.01 reaches the quality lr 0.001
    took ~1000 steps for in ~100-200 on the 10^5-node built-in graph.

    Mode ``auto`` (the default): full mode with the exact all-pairs objective up to
    ``auto_full_nodes`` nodes, minibatch mode above; :meth:`resolved` with the graph's node count
    makes the choice and :attr:`mode_reason` says why.

    Stopping (plateau): the validation score (``monitor``: by default AUC in full mode, the mean of
    AUC and AP in minibatch mode; the split's official metric when it has one, e.g. OGB's Hits@K)
    every ``eval_every`` epochs (full mode) or every ``eval_steps`` optimizer steps (minibatch;
    default 25); stop when it has not risen by at least ``min_delta`` above the last such rise for
    ``patience`` evaluations in a row (default 10 in full mode, 3 in minibatch mode; 0: never),
    after ``epochs`` epochs (the maximum), or when ``time_budget`` seconds of wall clock (training
    and evaluation) are spent; in every case the run ends evaluated (checkpointed too when out of
    time, or with ``checkpoint_every``) and the best-validation (highest score) weights are restored. AUC alone is a poor monitor for minibatch
    mode on heavy-tailed graphs: on the built-in 10^5-node graph it peaks within ~100 steps and then
    falls while AP still rises (README, "Time to quality"); full mode's defaults were checked on Cora
    with AUC and keep it. Defaults (min_delta 0.003; patience 10 full, 3 minibatch) from replaying
    the rule on recorded curves (benchmarks/time_to_quality.py --replay; README, "Time to
    quality"): on Cora full mode they stop at epoch ~70 instead of 200 with the same test AUC/AP,
    within 1.5x the time validation AUC first came within 0.005 of its final value; on the 10^5-node
    built-in graph minibatch mode stops after ~150 steps instead of ~670 with test AUC/AP as high. Validation
    scores a fixed seeded subset of ``eval_pairs`` positive and as many negative validation pairs
    through their exact (unsampled) 2-hop blocks when that is cheaper than full-graph inference,
    all pairs with full inference otherwise.

    Every field carries ``metadata={"help": ...}`` (and ``"choices"`` where it has them): the
    command line generates its ``--<field-name>`` options from them (``scalevgae.cli``), so a
    new setting is added here only. Optional metadata: ``"off"`` (a CLI value meaning None) and
    ``"cli_default"`` (the CLI's default when it differs from the API's).
    """

    model: str = field(default="vgae", metadata={"help": "VGAE (variational) or GAE", "choices": MODELS})
    mode: str = field(default="auto", metadata={
        "help": "auto: full up to --auto-full-nodes nodes, minibatch above; full: whole-graph steps (exact "
                "all-pairs loss up to --full-max-nodes); minibatch: neighbour-sampled link batches",
        "choices": MODES})
    hidden: int = field(default=32, metadata={"help": "width of the first GCN layer"})
    latent: int = field(default=16, metadata={"help": "latent dimension (width of z)"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the encoder's inputs, in [0, 1)"})
    epochs: Optional[int] = field(default=None, metadata={
        "help": "the most epochs; plateau stopping (--patience) usually ends the run sooner "
                "(default 200 full / 100 minibatch)", "aliases": ("--max-epochs",)})
    steps: Optional[int] = field(default=None, metadata={"help": "stop after this many optimizer steps "
                                                                 "(default, or 0: no limit)", "off": 0})
    lr: Optional[float] = field(default=None, metadata={"help": "learning rate (default 0.01)"})
    optimizer: str = field(default="adam", metadata={"help": "optimizer", "choices": OPTIMIZERS})
    momentum: float = field(default=0.9, metadata={"help": "sgd: momentum"})
    weight_decay: float = field(default=0.0, metadata={"help": "L2 weight decay of the optimizer"})
    neg_ratio: Optional[int] = field(default=None, metadata={"help": "sampled negatives per positive "
                                                                     "(default 5)"})
    self_loop_weight: Optional[float] = field(default=None, metadata={
        "help": "weight of the self-loop positive term of the sampled loss (default N / E)"})
    kl_weight: Optional[float] = field(default=None, metadata={"help": "VGAE: weight of the KL term "
                                                                       "(default 1 / N)"})
    full_max_nodes: int = field(default=50000, metadata={
        "help": "full mode: largest graph trained with the exact all-pairs loss; above it, sampled negatives"})
    exclude_heldout: bool = field(default=True, metadata={
        "help": "never train validation/test edges as non-edges (off: the paper's loss)"})
    ema_decay: Optional[float] = field(default=None, metadata={
        "help": "evaluate/keep an exponential moving average of the weights "
                "(default 0.95 full, 0.99 minibatch; 0: off)"})
    batch_size: int = field(default=512, metadata={"help": "minibatch: positive pairs per batch"})
    fanouts: tuple = field(default=(10, 5), metadata={"help": "minibatch: neighbours per layer, first hop first, e.g. 10,5; "
                                                      "-1: all (--fanouts=-1,5 when the first is -1). -1 last: the input layer's exact aggregation "
                                                      "is computed once for all nodes (one more features-sized "
                                                      "array) and read per batch, faster than sampling it "
                                                      "(without dropout)"})
    monitor: Optional[str] = field(default=None, metadata={
        "help": "validation score for stopping and for the restored weights: auc+ap (their mean), auc or ap; "
                "default auc (full) / auc+ap (minibatch); a split's official metric (OGB's) replaces it",
        "choices": MONITORS})
    patience: Optional[int] = field(default=None, metadata={
        "help": "stop after this many evaluations in a row without a rise of --min-delta in the validation "
                "score (--monitor) (default 10 full / 3 minibatch; 0: never)"})
    min_delta: float = field(default=0.003, metadata={"help": "smallest validation-score rise that counts as "
                                                              "progress"})
    time_budget: Optional[float] = field(default=None, metadata={
        "help": "seconds of wall clock (training + validation) after which the run ends, validated and "
                "checkpointed (default: none)"})
    eval_every: int = field(default=1, metadata={"help": "full mode: epochs between validation evaluations"})
    eval_steps: Optional[int] = field(default=None, metadata={
        "help": "minibatch mode: steps between validation evaluations (default 25)"})
    eval_pairs: int = field(default=4096, metadata={
        "help": "validate on this many positive (and as many negative) seeded validation pairs through their "
                "exact blocks when cheaper than full inference (0: all pairs, full inference)"})
    auto_full_nodes: int = field(default=7500, metadata={
        "help": "mode auto: full mode with the exact objective up to this many nodes, minibatch above"})
    seed: int = field(default=0, metadata={"help": "split, initialisation and sampling seed"})
    reorder: str = field(default="none", metadata={
        "help": "renumber the nodes for memory locality before training (degree: by descending degree; rcm: "
                "reverse Cuthill-McKee); every output stays in the original node ids", "choices": REORDERS})
    device: str = field(default="auto", metadata={"help": "cpu, cuda, cuda:1 or auto"})
    amp: str = field(default="auto", metadata={"help": "bf16 autocast (auto: on GPU)",
                                               "choices": ("auto", "bf16", "off")})
    checkpoint_every: int = field(default=0, metadata={"help": "steps between checkpoints (0: none)",
                                                       "cli_default": 50})
    embed_batch_size: int = field(default=65536, metadata={"help": "rows per propagation chunk of "
                                                                   "full-graph inference"})
    progress: bool = field(default=True, metadata={"help": "progress bar / progress lines"})
    progress_every: float = field(default=30.0, metadata={
        "help": "seconds between plain progress lines when the output is not a terminal"})

    def validate(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.monitor is not None and self.monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {MONITORS}, got {self.monitor!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.reorder not in REORDERS:
            raise ValueError(f"reorder must be one of {REORDERS}, got {self.reorder!r}")
        if self.amp not in ("auto", "bf16", "off"):
            raise ValueError(f"amp must be 'auto', 'bf16' or 'off', got {self.amp!r}")
        for name in ("hidden", "latent", "batch_size", "eval_every", "full_max_nodes", "auto_full_nodes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("epochs", "steps", "neg_ratio", "eval_steps", "time_budget"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ValueError(f"{name} must be positive, got {v}")
        if self.patience is not None and self.patience < 0:
            raise ValueError(f"patience must be >= 0 (0: never stop early), got {self.patience}")
        if self.progress_every <= 0:
            raise ValueError(f"progress_every must be positive, got {self.progress_every}")
        if self.ema_decay is not None and not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1) or None, got {self.ema_decay}")
        if not self.min_delta >= 0:
            raise ValueError(f"min_delta must be >= 0, got {self.min_delta}")
        if self.eval_pairs < 0:
            raise ValueError(f"eval_pairs must be >= 0, got {self.eval_pairs}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.mode != "full" and len(self.fanouts) != 2:
            raise ValueError(f"the two-layer encoders need two fanouts, got {tuple(self.fanouts)}")

    def choose_mode(self, num_nodes: int) -> tuple[str, str]:
        """(mode, why) for a graph of ``num_nodes`` nodes; an explicit mode is kept."""
        if self.mode != "auto":
            return self.mode, f"mode {self.mode} requested"
        if num_nodes <= self.auto_full_nodes:
            return "full", (f"auto: {num_nodes} nodes <= auto_full_nodes={self.auto_full_nodes}, "
                            "full mode with the exact all-pairs objective")
        return "minibatch", (f"auto: {num_nodes} nodes > auto_full_nodes={self.auto_full_nodes}, "
                             "minibatch mode (neighbor sampling)")

    def resolved(self, num_nodes: Optional[int] = None) -> TrainConfig:
        """A copy with the mode-dependent defaults filled in; with ``num_nodes`` mode ``auto``
        becomes full or minibatch (:meth:`choose_mode`), without it auto keeps full's defaults."""
        self.validate()
        mode = self.mode if num_nodes is None else self.choose_mode(num_nodes)[0]
        full = mode != "minibatch"
        c = dataclasses.replace(self, mode=mode, fanouts=tuple(int(f) for f in self.fanouts))
        if c.epochs is None:
            c.epochs = 200 if full else 100
        if c.lr is None:
            c.lr = 0.01
        if c.ema_decay is None:
            c.ema_decay = 0.95 if full else 0.99
        if c.monitor is None:
            c.monitor = "auc" if full else "auc+ap"
        if c.neg_ratio is None:
            c.neg_ratio = 5
        if c.patience is None:
            c.patience = 10 if full else 3
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
