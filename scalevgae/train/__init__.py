"""Training: configuration, objectives, the Trainer and checkpoints."""

from scalevgae.train.config import TrainConfig
from scalevgae.train.objectives import all_pairs_loss, kipf_weights, sampled_loss, self_loop_weight
from scalevgae.train.trainer import Trainer, TrainResult, resolve_device

__all__ = ["TrainConfig", "TrainResult", "Trainer", "all_pairs_loss", "kipf_weights", "resolve_device",
           "sampled_loss", "self_loop_weight"]
