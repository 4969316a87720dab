"""scalevgae: Variational Graph Auto-Encoders on million-node graphs."""

import os

# Idle libgomp threads spin by default; the loader's sampling thread and the training thread
# each run OpenMP teams and then starve each other on a few cores (measured: 2x slower steps).
# Only effective when scalevgae is imported before torch; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from scalevgae import metrics, models, nn, ops, train
from scalevgae.graph import Graph
from scalevgae.models import GAE, VGAE, GCNEncoder, VGAEEncoder
from scalevgae.ops import available_backends
from scalevgae.train import TrainConfig, Trainer

__version__ = "0.1.0"
__all__ = [
    "GAE",
    "GCNEncoder",
    "Graph",
    "TrainConfig",
    "Trainer",
    "VGAE",
    "VGAEEncoder",
    "__version__",
    "available_backends",
    "metrics",
    "models",
    "nn",
    "ops",
    "train",
]
