"""scalevgae: Variational Graph Auto-Encoders on million-node graphs."""

import os

# Idle libgomp threads spin by default; the loader's sampling thread and the training thread
# each run OpenMP teams and then starve each other on a few cores (measured: 2x slower steps).
# Only effective when scalevgae is imported before torch; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Transparent huge pages for torch's CPU allocations of 2 MB and more: a fresh N x F output is
# then faulted in 2 MB pages instead of 4 KB ones, and random row gathers over it miss the TLB
# far less (measured: edge_grad at E = n = 10^6, F = 64 went from 0.66 to 0.32 s). Read by torch
# at its first large allocation, so set before any; THP_MEM_ALLOC_ENABLE=0 keeps 4 KB pages.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

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
