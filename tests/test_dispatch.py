"""Backend choice: explicit argument > SCALEVGAE_BACKEND > best available for the device."""

from __future__ import annotations

import pytest
import torch

from scalevgae import _ext
from scalevgae.ops import BACKENDS, available_backends, dispatch, gcn_propagate

CPU = torch.device("cpu")


def test_available_backends_lists_every_backend_with_reason():
    st = available_backends()
    assert tuple(st) == BACKENDS
    for name, s in st.items():
        assert isinstance(s.usable, bool) and isinstance(s.reason, str) and s.reason, name
    assert st["reference"].usable
    assert st["cpu"].usable == _ext.loaded()
    if not torch.cuda.is_available():
        assert not st["cuda"].usable


def test_default_is_best_for_device(monkeypatch):
    monkeypatch.delenv("SCALEVGAE_BACKEND", raising=False)
    want = "cpu" if _ext.loaded() else "reference"
    assert dispatch.resolve("op", CPU) == want


def test_explicit_backend_wins_over_env(monkeypatch):
    monkeypatch.setenv("SCALEVGAE_BACKEND", "cpu")
    assert dispatch.resolve("op", CPU, "reference") == "reference"


def test_env_backend(monkeypatch):
    monkeypatch.setenv("SCALEVGAE_BACKEND", "reference")
    assert dispatch.resolve("op", CPU) == "reference"
    monkeypatch.setenv("SCALEVGAE_BACKEND", "")
    assert dispatch.resolve("op", CPU) in ("cpu", "reference")


def test_env_backend_used_by_op(monkeypatch):
    """An unusable backend named in the environment makes the op raise: the variable is read."""
    monkeypatch.setenv("SCALEVGAE_BACKEND", "nonsense")
    rowptr, col, x = torch.tensor([0, 1, 1]), torch.tensor([1]), torch.randn(2, 3)
    with pytest.raises(ValueError, match="unknown backend 'nonsense'"):
        gcn_propagate(rowptr, col, x)


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend"):
        dispatch.resolve("op", CPU, "tpu")
    with pytest.raises(ValueError, match="unknown backend"):
        dispatch._status("tpu")


def test_backend_the_op_lacks():
    with pytest.raises(ValueError, match="has no 'triton' backend"):
        dispatch.resolve("op", CPU, "triton", supported=("reference", "cpu"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_missing_backend_raises_with_reason():
    with pytest.raises(RuntimeError, match="backend 'cuda' is not usable: .+"):
        dispatch.resolve("gcn_propagate", CPU, "cuda")
    rowptr, col, x = torch.tensor([0, 1, 1]), torch.tensor([1]), torch.randn(2, 3)
    with pytest.raises(RuntimeError, match="cuda"):
        gcn_propagate(rowptr, col, x, backend="cuda")


def test_cpu_backend_rejects_cuda_device():
    st = dispatch._status("cpu", "cuda")
    assert not st.usable
    assert "CPU" in st.reason or "extension" in st.reason


def test_triton_needs_interpreter_without_gpu(monkeypatch):
    if torch.cuda.is_available() or not dispatch._triton_importable():
        pytest.skip("needs triton and no GPU")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    st = dispatch._status("triton", "cpu")
    assert not st.usable and "TRITON_INTERPRET" in st.reason
