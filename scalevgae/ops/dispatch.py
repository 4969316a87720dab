"""Backend choice for every op.

Order: an explicit ``backend=`` argument, then the ``SCALEVGAE_BACKEND`` environment variable,
then the best backend usable for the tensors' device (cuda > triton > reference on GPU,
cpu > reference on CPU). An explicitly requested backend that cannot run raises with the reason.

``cuda_sim`` (the CUDA kernel sources run on the CPU through the SIMT emulator, a test build) is
only ever used when asked for by name, never by the automatic order.
"""

from __future__ import annotations

import importlib.util
import os
from typing import NamedTuple, Optional, Sequence

import torch

from scalevgae import _ext

BACKENDS = ("reference", "cpu", "cuda", "triton", "cuda_sim")
# Backends that run the kernels of a compiled extension, and the op namespace of each.
COMPILED = {"cpu": _ext.NAMESPACE, "cuda": _ext.NAMESPACE, "cuda_sim": _ext.SIM_NAMESPACE}
_REBUILD = "rebuild it: python setup.py build_ext --inplace"


class BackendStatus(NamedTuple):
    usable: bool
    reason: str


def _triton_interpret() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _triton_importable() -> bool:
    return importlib.util.find_spec("triton") is not None


def namespace(backend: str) -> str:
    """The op namespace (``torch.ops.<ns>``) of a compiled backend."""
    return COMPILED[backend]


def ops_of(backend: str):
    """``torch.ops.<ns>`` of a compiled backend: its kernels, e.g. ``ops_of("cpu").gcn_spmm``."""
    return getattr(torch.ops, COMPILED[backend])


def _device_status(name: str, device_type: Optional[str]) -> BackendStatus:
    """Whether backend `name` can run (on `device_type` if given), ignoring which ops it has."""
    if name == "reference":
        return BackendStatus(True, "pure PyTorch, always available")
    if name == "cpu":
        if not _ext.loaded():
            return BackendStatus(False, f"compiled extension not available ({_ext.error()})")
        if device_type not in (None, "cpu"):
            return BackendStatus(False, f"the cpu backend runs on CPU tensors, got {device_type}")
        return BackendStatus(True, "C++ kernels (OpenMP)")
    if name == "cuda":
        if not _ext.loaded():
            return BackendStatus(False, f"compiled extension not available ({_ext.error()})")
        if not _ext.with_cuda():
            return BackendStatus(False, "extension was built without CUDA kernels")
        if not torch.cuda.is_available():
            return BackendStatus(False, "no CUDA device visible")
        if device_type not in (None, "cuda"):
            return BackendStatus(False, f"the cuda backend runs on CUDA tensors, got {device_type}")
        return BackendStatus(True, "CUDA kernels")
    if name == "triton":
        if not _triton_importable():
            return BackendStatus(False, "triton is not installed (pip install triton)")
        if device_type == "cpu" or (device_type is None and not torch.cuda.is_available()):
            if not _triton_interpret():
                return BackendStatus(False, "no CUDA device; set TRITON_INTERPRET=1 to run Triton on the CPU")
            return BackendStatus(True, "Triton kernels in the interpreter (TRITON_INTERPRET=1, slow)")
        return BackendStatus(True, "Triton kernels")
    if name == "cuda_sim":
        if not _ext.sim_loaded():
            return BackendStatus(False, f"CUDA emulation build not available ({_ext.sim_error()}); "
                                        "build it with SCALEVGAE_CUDA_SIM=1 python setup.py build_ext --inplace")
        if device_type not in (None, "cpu"):
            return BackendStatus(False, f"the cuda_sim backend runs on CPU tensors, got {device_type}")
        return BackendStatus(True, "the CUDA kernel sources run on the CPU by the SIMT emulator (tests; slow)")
    raise ValueError(f"unknown backend {name!r}; expected one of {BACKENDS}")


def _status(name: str, device_type: Optional[str] = None, kernels: Sequence[str] = ()) -> BackendStatus:
    """Whether backend `name` can run (on `device_type` if given) and why not. A compiled backend
    must also have every op of `kernels` (an extension built before an op was added lacks it)."""
    st = _device_status(name, device_type)
    if st.usable and name in COMPILED:
        missing = [k for k in kernels if not _ext.has_op(k, COMPILED[name])]
        if missing:
            return BackendStatus(False, f"the compiled extension has no {', '.join(missing)} op "
                                        f"(stale build; {_REBUILD})")
    return st


def available_backends() -> dict[str, BackendStatus]:
    """Each backend with whether it is usable on this machine and, if not, why."""
    return {name: _status(name) for name in BACKENDS}


def resolve(
    op: str,
    device: torch.device,
    backend: Optional[str] = None,
    supported: Sequence[str] = BACKENDS,
    kernels: Sequence[str] = (),
) -> str:
    """Pick the backend that runs `op` on `device`.

    `kernels`: the compiled ops `op` calls on the cpu/cuda/cuda_sim backends; a build without
    them is skipped by the automatic choice and an error when requested.

    Raises ValueError for an unknown name or a backend `op` does not have, and RuntimeError
    for a requested backend that cannot run here (with the reason).
    """
    requested = backend if backend is not None else os.environ.get("SCALEVGAE_BACKEND") or None
    dev = device.type
    if requested is not None:
        if requested not in BACKENDS:
            raise ValueError(f"unknown backend {requested!r}; expected one of {BACKENDS}")
        if requested not in supported:
            raise ValueError(f"{op} has no {requested!r} backend; it has {tuple(supported)}")
        st = _status(requested, dev, kernels)
        if not st.usable:
            raise RuntimeError(f"{op}: backend {requested!r} is not usable: {st.reason}")
        return requested
    order = ("cuda", "triton", "reference") if dev == "cuda" else ("cpu", "reference")
    for name in order:
        if name in supported and _status(name, dev, kernels).usable:
            if name == "reference" and dev == "cpu":
                _ext.warn_fallback_once()
            return name
    return "reference"
