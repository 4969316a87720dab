"""Public ops. Each dispatches to the reference, cpu, cuda or triton backend."""

from scalevgae.ops.dispatch import BACKENDS, available_backends
from scalevgae.ops.propagate import gcn_propagate

__all__ = ["BACKENDS", "available_backends", "gcn_propagate"]
