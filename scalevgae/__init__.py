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


def _fix_mmap_threshold(nbytes: int = 1 << 16) -> None:
    """glibc serves a large allocation by mmap, but raises that threshold (up to 32 MB) whenever
    one is freed; the multi-MB temporaries of graph building, splitting and batching then come
    from the heap and stay resident after they are freed (measured: 10^6-node training peaked
    0.29 GB higher). A fixed threshold turns the raising off. A user's MALLOC_MMAP_THRESHOLD_ wins."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    try:
        import ctypes

        ctypes.CDLL(None).mallopt(-3, nbytes)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc
        pass


_fix_mmap_threshold()

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
