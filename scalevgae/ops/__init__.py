"""Public ops. Each dispatches to the reference, cpu, cuda, triton or cuda_sim backend."""

from scalevgae.ops._selftest import selftest
from scalevgae.ops.all_pairs import all_pairs_bce_loss
from scalevgae.ops.decode import edge_bce_loss, edge_logits
from scalevgae.ops.dispatch import BACKENDS, available_backends
from scalevgae.ops.propagate import gcn_propagate
from scalevgae.ops.topk import topk_links

__all__ = [
    "BACKENDS",
    "all_pairs_bce_loss",
    "available_backends",
    "edge_bce_loss",
    "edge_logits",
    "gcn_propagate",
    "selftest",
    "topk_links",
]
