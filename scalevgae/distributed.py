"""Data-parallel training with torch.distributed (torchrun): process group set-up and pair sharding.

Under ``torchrun --nproc-per-node K`` every rank runs the same trainer. The positive training pairs
are permuted once per epoch with a seed shared by all ranks and cut into global batches of
``batch_size * world_size`` pairs; rank r takes the r-th slice of every global batch. So every pair
is seen exactly once per epoch across all ranks, every rank runs the same number of steps (DDP's
all-reduce needs that; a rank whose slice of the last global batch is empty still steps with a
zero loss), and the effective batch is ``batch_size * world_size``.
"""

from __future__ import annotations

import gc
import mmap
import os
import pickle
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Optional, TypeVar

import numpy as np
import torch
import torch.distributed as dist

try:
    # Bind torch.distributed.nn.functional's ``group=group.WORLD`` default arguments now, while
    # no group exists (they become None). DDP's constructor imports that module (through
    # torch._dynamo); imported after init_process_group, its ten defaults keep the default group
    # alive after destroy_process_group, so gloo's worker threads outlive it and may still be
    # releasing the last collective's tensors (a release that needs the GIL) when the
    # interpreter finalizes: "terminate called without an active exception" (SIGABRT).
    import torch.distributed.nn.functional  # noqa: F401
except ImportError:  # a torch build without distributed support
    pass

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: rank, world size, local rank and the device it should use."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: Optional[str] = None, backend: Optional[str] = None) -> DistInfo:
    """Join the process group that torchrun describes (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_*).

    Without torchrun (WORLD_SIZE unset or 1) this is a no-op returning a single-process DistInfo.
    The backend is NCCL when this rank uses a CUDA device, gloo otherwise; each rank takes
    ``cuda:LOCAL_RANK`` when CUDA is available and ``device`` does not say "cpu".
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and (device is None or device.startswith("cuda"))
    dev = torch.device(f"cuda:{local_rank}") if use_cuda else torch.device(device or "cpu")
    if world <= 1:
        return DistInfo(device=dev if device is not None or use_cuda else torch.device("cpu"))
    if use_cuda:
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend or ("nccl" if use_cuda else "gloo"))
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank, device=dev)


def current() -> DistInfo:
    """DistInfo of an already-initialised process group (single process otherwise)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(),
                        local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    return DistInfo()


def num_steps(num_pairs: int, batch_size: int, world_size: int) -> int:
    """Steps per epoch on every rank: global batches of batch_size * world_size pairs."""
    global_batch = batch_size * world_size
    return (num_pairs + global_batch - 1) // global_batch


def rank_batch(order: Any, step: int, batch_size: int, rank: int, world_size: int, start: int = 0) -> torch.Tensor:
    """Pair indices of ``rank`` at ``step``: its slice of global batch ``step`` of ``order[start:]``
    (``order``: a 1-D tensor or anything sliced like one, e.g. an ``EpochOrder``).

    Slices of one global batch are contiguous and as equal as possible, so the last (short)
    global batch is still split evenly; a slice may be empty.
    """
    global_batch = batch_size * world_size
    chunk = order[start + step * global_batch : start + (step + 1) * global_batch]
    bounds = [(chunk.numel() * r) // world_size for r in range(world_size + 1)]
    return chunk[bounds[rank] : bounds[rank + 1]]


def all_reduce_mean(value: float, info: DistInfo) -> float:
    """Mean of a Python float over ranks (for logging)."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return float(t) / info.world_size


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shared_on_host(info: DistInfo, build: Callable[[], T]) -> T:
    """``build()``'s result, built once per host and memory-mapped by every rank on it.

    Without a process group this is ``build()``. Under torchrun the host's local rank 0 builds
    (e.g. the graph, features and split), ``torch.save``s it to the host's temporary directory
    and every rank of the host ``torch.load``s it with ``mmap=True``: the tensors are private
    read-mostly mappings of one file, so the K ranks of a host share one copy of their pages
    through the page cache instead of holding K copies (count them with PSS, not RSS). Numpy
    arrays in the result are pickled by value, so pass tensors. The file is deleted once every
    rank has mapped it. Every host builds its own copy (no shared file system is assumed).
    If the build fails, every other rank runs ``build()`` itself and so raises the same error.
    """
    if not info.enabled:
        return build()
    run = os.environ.get("TORCHELASTIC_RUN_ID") or os.environ.get("MASTER_PORT", "0")
    path = os.path.join(tempfile.gettempdir(), f"scalevgae-shared-{os.getuid()}-{run}.pt")
    builder = info.local_rank == 0
    failed = torch.zeros(1, dtype=torch.int32)
    obj = None
    if builder:
        try:
            obj = build()
            torch.save(obj, path + ".part", pickle_module=_MemmapPickle)
            os.replace(path + ".part", path)
        except BaseException:
            failed += 1
            _all_reduce_cpu(failed)  # tell the other ranks before raising here
            raise
    _all_reduce_cpu(failed)
    if int(failed):
        return build()  # this rank's own build raises the builder's error, with its message
    del obj  # the builder also switches to the shared mapping: its private copy is freed
    gc.collect()
    obj = torch.load(path, mmap=True, weights_only=False)
    dist.barrier()  # every rank of the host has mapped the file: its name can go
    if builder:
        os.remove(path)
    return obj


class _MemmapPickle:
    """A ``pickle_module`` for ``torch.save`` that saves a file-backed numpy memmap as a mapping of
    its file (by name, offset, dtype and shape), not by value."""

    class Pickler(pickle.Pickler):
        def reducer_override(self, obj: object) -> object:
            if isinstance(obj, np.memmap) and isinstance(obj.base, mmap.mmap) and obj.filename:
                order = "F" if obj.flags.f_contiguous and not obj.flags.c_contiguous else "C"
                return np.memmap, (obj.filename, obj.dtype, "r", obj.offset, obj.shape, order)
            return NotImplemented

    Unpickler = pickle.Unpickler
    load = pickle.load
    dump = pickle.dump


def _all_reduce_cpu(t: torch.Tensor) -> None:
    """Sum a small CPU tensor over ranks (through the device under NCCL)."""
    if dist.get_backend() == "nccl":
        d = t.cuda()
        dist.all_reduce(d)
        t.copy_(d.cpu())
    else:
        dist.all_reduce(t)


def shutdown_distributed() -> None:
    """Leave the process group on every rank and free its backend before returning.

    A no-op without a process group. Drop (or ``close()``) every ``Trainer`` and
    ``DistributedDataParallel`` wrapper first: a DDP reducer still alive holds the group, and
    then gloo's worker threads outlive ``destroy_process_group`` and can abort the process at
    interpreter exit (see the import at the top of this module). Wrappers that are merely
    unreachable are collected here, while the group is still registered, so that the group's
    last reference goes in ``destroy_process_group``, which joins gloo's threads without
    holding the GIL.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    gc.collect()
    # Leave together: no rank tears its connections down while a peer still waits on it.
    dist.barrier()
    dist.destroy_process_group()
