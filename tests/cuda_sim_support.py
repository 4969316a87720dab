"""The cuda_sim backend in tests: the CUDA kernel sources run on CPU tensors through the SIMT
emulator (``scalevgae._C_cuda_sim``, built with ``SCALEVGAE_CUDA_SIM=1``).

Every test parametrized over ``cuda`` also runs over ``cuda_sim``. Those runs are strict: torch's
deterministic mode with uninitialized-memory filling (``torch.empty`` comes back NaN / max-int),
so an output element a kernel forgets to write fails the comparison with the reference.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import pytest
import torch

from scalevgae import _ext
from scalevgae.ops import dispatch

STATUS = dispatch._status("cuda_sim")
MARKS = [pytest.mark.cuda_sim, pytest.mark.skipif(not STATUS.usable, reason=STATUS.reason)]


def param(name: str = "cuda_sim"):
    return pytest.param(name, marks=MARKS, id=name)


@contextlib.contextmanager
def strict() -> Iterator[None]:
    """Deterministic algorithms on, uninitialized memory filled (restored on exit)."""
    det, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True)
    torch.utils.deterministic.fill_uninitialized_memory = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(det, warn_only=warn_only)
        torch.utils.deterministic.fill_uninitialized_memory = fill


@contextlib.contextmanager
def block_order(seed: int, concurrent_blocks: int = 1) -> Iterator[None]:
    """Run the emulated CUDA blocks in the shuffled order of ``seed`` (restored on exit)."""
    sim = _ext._C_SIM
    old = sim.get_sim_options()
    sim.set_sim_options(seed=seed, concurrent_blocks=concurrent_blocks, strict=old["strict"])
    try:
        yield
    finally:
        sim.set_sim_options(**old)


def strict_if_sim(request: pytest.FixtureRequest) -> Iterator[None]:
    """Body of an autouse fixture: tests whose ``backend`` parameter is cuda_sim run strict."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("backend") == "cuda_sim":
        with strict():
            yield
    else:
        yield
