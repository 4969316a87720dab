import os
import pickle
from collections import defaultdict

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from scalevgae.data.planetoid import find_planetoid_root, load_planetoid, restricted_load

ROOT = find_planetoid_root() or "../shared/datasets/planetoid"
HAVE_CORA = os.path.isfile(os.path.join(ROOT, "ind.cora.x"))


def write_fake(root, name="citeseer", n_train=6, test_ids=(8, 6, 10), n_feat=5, classes=3):
    """Fake Planetoid files: nodes 0..n_train-1 in allx, test ids as given (gaps = isolated)."""
    rng = np.random.default_rng(0)
    allx = sp.csr_matrix((rng.random((n_train, n_feat)) > 0.5).astype(np.float32))
    tx = sp.csr_matrix((rng.random((len(test_ids), n_feat)) > 0.5).astype(np.float32))
    ally = np.eye(classes)[rng.integers(0, classes, n_train)]
    ty = np.eye(classes)[rng.integers(0, classes, len(test_ids))]
    graph = defaultdict(list, {0: [1, 2], 1: [0], 2: [0, 8], 8: [2], 6: [10], 10: [6]})
    objs = dict(x=allx[:3], y=ally[:3], allx=allx, ally=ally, tx=tx, ty=ty, graph=graph)
    for k, v in objs.items():
        with open(os.path.join(root, f"ind.{name}.{k}"), "wb") as f:
            pickle.dump(v, f, protocol=2)
    with open(os.path.join(root, f"ind.{name}.test.index"), "w") as f:
        f.write("\n".join(str(i) for i in test_ids) + "\n")
    return allx, tx, ally, ty


def test_fake_citeseer_isolated_nodes(tmp_path):
    allx, tx, ally, ty = write_fake(str(tmp_path))
    d = load_planetoid(str(tmp_path), "citeseer")
    # 6 allx rows + the padded test id range 6..10 (7 and 9 are isolated, not in tx)
    assert d.num_nodes == 6 + 5
    x = d.x.numpy()
    np.testing.assert_array_equal(x[:6], allx.toarray())
    for k, tid in enumerate((8, 6, 10)):
        np.testing.assert_array_equal(x[tid], tx.toarray()[k])
        assert int(d.y[tid]) == int(ty[k].argmax())
    assert int(d.y[7]) == -1 and int(d.y[9]) == -1 and not x[7].any()  # isolated, unlabeled
    assert d.graph.num_edges == 2 * 4 and d.graph.is_symmetric


def test_malicious_pickle_raises(tmp_path):
    write_fake(str(tmp_path), name="cora")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    with open(tmp_path / "ind.cora.graph", "wb") as f:
        pickle.dump(Evil(), f, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match=r"ind\.cora\.graph.*not allowed"):
        load_planetoid(str(tmp_path), "cora")
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        restricted_load(pickle.dumps(Evil()))
    with pytest.raises(pickle.UnpicklingError, match="builtins.eval"):
        restricted_load(b"cbuiltins\neval\n(S'1'\ntR.")


def test_missing_and_malformed_files(tmp_path):
    write_fake(str(tmp_path), name="cora")
    os.remove(tmp_path / "ind.cora.ty")
    with pytest.raises(FileNotFoundError, match=r"ind\.cora\.ty"):
        load_planetoid(str(tmp_path), "cora")
    write_fake(str(tmp_path), name="cora")
    with open(tmp_path / "ind.cora.allx", "wb") as f:
        f.write(b"\x80\x02garbage")
    with pytest.raises(ValueError, match=r"ind\.cora\.allx"):
        load_planetoid(str(tmp_path), "cora")
    write_fake(str(tmp_path), name="cora")
    with open(tmp_path / "ind.cora.graph", "wb") as f:
        pickle.dump([1, 2], f, protocol=2)
    with pytest.raises(ValueError, match=r"ind\.cora\.graph"):
        load_planetoid(str(tmp_path), "cora")
    with pytest.raises(ValueError, match="unknown"):
        load_planetoid(str(tmp_path), "imagenet")


@pytest.mark.skipif(not HAVE_CORA, reason=f"Cora files not found in {ROOT}")
def test_real_cora_matches_pyg_reader():
    d = load_planetoid(ROOT, "cora")
    assert (d.num_nodes, d.x.size(1), d.graph.num_edges) == (2708, 1433, 10556)
    assert int(d.y.min()) == 0 and int(d.y.max()) == 6
    pyg_io = pytest.importorskip("torch_geometric.io.planetoid")
    data = pyg_io.read_planetoid_data(ROOT, "cora")
    torch.testing.assert_close(d.x, data.x)
    torch.testing.assert_close(d.y, data.y)
    ei = d.graph.edge_index
    key = lambda e: (e[0] * 10**6 + e[1]).sort().values
    torch.testing.assert_close(key(ei), key(data.edge_index))
