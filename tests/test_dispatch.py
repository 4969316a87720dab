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


def test_cuda_sim_only_when_asked(monkeypatch):
    """cuda_sim runs on CPU tensors, only by name (argument or environment), never automatically."""
    monkeypatch.delenv("SCALEVGAE_BACKEND", raising=False)
    monkeypatch.setattr(_ext, "sim_loaded", lambda: True)
    assert dispatch._status("cuda_sim").usable
    assert dispatch.resolve("op", CPU) == ("cpu" if _ext.loaded() else "reference")
    assert dispatch.resolve("op", CPU, "cuda_sim") == "cuda_sim"
    monkeypatch.setenv("SCALEVGAE_BACKEND", "cuda_sim")
    assert dispatch.resolve("op", CPU) == "cuda_sim"
    with pytest.raises(RuntimeError, match="cuda_sim backend runs on CPU tensors"):
        dispatch.resolve("op", torch.device("cuda"), "cuda_sim")
    assert dispatch.namespace("cuda_sim") == "scalevgae_cuda_sim" != dispatch.namespace("cpu")


def test_cuda_sim_missing_says_how_to_build(monkeypatch):
    monkeypatch.setattr(_ext, "sim_loaded", lambda: False)
    with pytest.raises(RuntimeError, match="SCALEVGAE_CUDA_SIM=1"):
        dispatch.resolve("gcn_propagate", CPU, "cuda_sim")


@pytest.mark.skipif(not _ext.loaded(), reason="compiled extension not built")
@pytest.mark.parametrize("missing", ["gcn_spmm", "edge_dot", "sample_adj", "neighbor_sample", "csr_has_pairs"])
def test_stale_build_skipped_automatically_and_named_when_requested(missing, monkeypatch):
    """An extension built before an op existed: every op family falls back to the reference on its
    own, and names the missing op when the compiled backend is asked for (one check for all)."""
    from scalevgae.graph import Graph
    from scalevgae.ops import decode
    from scalevgae.sampling import membership, neighbor

    monkeypatch.delenv("SCALEVGAE_BACKEND", raising=False)
    real = _ext.has_op
    monkeypatch.setattr(_ext, "has_op", lambda name, ns=_ext.NAMESPACE: name != missing and real(name, ns))
    gen = torch.Generator().manual_seed(5)
    g = Graph.from_edge_index(torch.randint(0, 12, (2, 40), generator=gen), num_nodes=12)
    z = torch.randn(12, 3, generator=gen, dtype=torch.float64)
    s, d = torch.randint(0, 12, (2, 9), generator=gen)
    calls = {
        "gcn_spmm": lambda b: gcn_propagate(g.rowptr, g.col, z, backend=b),
        "edge_dot": lambda b: decode.edge_logits(z, s, d, backend=b),
        "sample_adj": lambda b: neighbor.sample_neighbors(g, s.unique(), [3, 2], backend=b,
                                                          generator=torch.Generator().manual_seed(1)).n_id,
        "neighbor_sample": lambda b: neighbor.sample_neighbors(g, s.unique(), [3, 2], backend=b,
                                                               generator=torch.Generator().manual_seed(1)).n_id,
        "csr_has_pairs": lambda b: membership.has_pairs(g, s, d, backend=b),
    }
    call = calls[missing]
    with pytest.raises(RuntimeError, match=f"backend 'cpu' is not usable: .*no {missing} op .*stale build"):
        call("cpu")
    assert torch.equal(call(None), call("reference"))  # the automatic choice skipped cpu
    sampler = {"sample_adj", "neighbor_sample"}  # sample_neighbors on cpu needs both
    for other, f in calls.items():
        if other != missing and not {other, missing} <= sampler:
            f("cpu")  # the ops the build has still run


@pytest.mark.skipif(not _ext.loaded(), reason="compiled extension not built")
def test_selftest_passes_and_catches_a_wrong_kernel(monkeypatch, capsys):
    """`scalevgae selftest`: one row per (op, backend); a kernel off by 1e-3 fails its row and exit 1."""
    from scalevgae.cli import main
    from scalevgae.ops import propagate, selftest

    rows = selftest("cpu", seed=1, backends=["cpu"], log=None)
    assert {r.op for r in rows} >= {"gcn_propagate", "edge_logits", "edge_bce_loss", "sample_neighbors",
                                     "has_pairs", "all_pairs_bce_loss"}
    assert all(r.ok and r.backend == "cpu" for r in rows), rows

    real = propagate._impl
    monkeypatch.setattr(propagate, "_impl", lambda b: (lambda *a: real(b)(*a) * 1.001) if b == "cpu" else real(b))
    with pytest.raises(SystemExit) as exc:
        main(["selftest", "--device", "cpu", "--seed", "2"])
    assert exc.value.code == 1
    out = capsys.readouterr()
    assert "gcn_propagate                  cpu       FAIL" in out.out and "edge_logits" in out.out
    assert "FAILED: gcn_propagate/cpu" in out.err
    assert main(["selftest", "--device", "nonsense"]) == 2  # a user's mistake: one line, status 2
