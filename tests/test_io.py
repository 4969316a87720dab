"""Loaders: .npz, edge lists (ids, comments, headers, gz, malformed lines), OGB dirs, features."""

from __future__ import annotations

import gzip
import time

import numpy as np
import pytest
import torch

from scalevgae.data.edgelist import EdgeListError, parse_edge_list
from scalevgae.data.features import gather_rows, load_features
from scalevgae.data.io import (
    from_pyg,
    from_scipy,
    from_sparse_tensor,
    load_edge_list,
    load_graph,
    load_node_ids,
    load_npz,
    load_ogb_dir,
    save_node_ids,
)
from scalevgae.graph import Graph


def _pairs(g: Graph) -> set:
    ei = g.edge_index
    return set(zip(ei[0].tolist(), ei[1].tolist()))


def _und(edges) -> set:
    return {(a, b) for a, b in edges if a != b} | {(b, a) for a, b in edges if a != b}


# ---------------- edge lists ----------------

def test_edge_list_int_ids_comments_blank_lines(tmp_path):
    p = tmp_path / "g.txt"
    p.write_text("# a comment\n0 1\n\n1\t2   # trailing comment\n  2 3 0.5\n# end\n".replace(" 0.5", ""))
    d = load_edge_list(p)
    assert d.num_nodes == 4 and d.node_ids is None
    assert _pairs(d.graph) == _und([(0, 1), (1, 2), (2, 3)])


def test_edge_list_extra_columns_ignored_and_directed(tmp_path):
    p = tmp_path / "g.tsv"
    p.write_text("0\t1\t0.5\n2\t1\t3.0\n")
    d = load_edge_list(p, undirected=False)
    assert _pairs(d.graph) == {(0, 1), (2, 1)}


def test_edge_list_csv_header_auto(tmp_path):
    p = tmp_path / "g.csv"
    p.write_text("source,target\n3,4\n4,5\n")
    d = load_graph(p)
    assert d.num_nodes == 6 and _pairs(d.graph) == _und([(3, 4), (4, 5)])
    p2 = tmp_path / "h.csv"
    p2.write_text("a_col,b_col\n3,4\n1,2\n")
    assert load_graph(p2).num_nodes == 5  # non-numeric first line followed by numbers -> header


def test_edge_list_string_ids_remapped_and_saved(tmp_path):
    rng = np.random.default_rng(0)
    names = np.array([f"user_{i:03d}" for i in rng.permutation(50)])
    edges = rng.integers(0, 50, (200, 2))
    p = tmp_path / "s.csv"
    p.write_text("src,dst\n" + "\n".join(f"{names[a]},{names[b]}" for a, b in edges) + "\n")
    d = load_edge_list(p, header=True)
    ids = d.node_ids
    assert ids is not None and len(ids) == d.num_nodes == len(set(names[edges.reshape(-1)]))
    assert list(ids) == sorted(ids)
    got = {(ids[a], ids[b]) for a, b in _pairs(d.graph)}
    want = {(names[a], names[b]) for a, b in edges if a != b}
    assert got == want | {(b, a) for a, b in want}
    for ext in ("csv", "npy"):
        out = tmp_path / f"ids.{ext}"
        save_node_ids(out, ids)
        assert list(load_node_ids(out)) == list(ids)


def test_sparse_int_ids_remapped(tmp_path):
    p = tmp_path / "g.txt"
    p.write_text("1000000 5\n5 77777777\n-3 5\n")
    d = load_edge_list(p)
    assert d.num_nodes == 4
    assert d.node_ids.tolist() == [-3, 5, 1000000, 77777777]
    ids = d.node_ids
    assert {(int(ids[a]), int(ids[b])) for a, b in _pairs(d.graph)} == _und([(1000000, 5), (5, 77777777), (-3, 5)])
    dense = tmp_path / "d.txt"
    dense.write_text("1 2\n2 3\n")  # 1-based dense ids are kept as they are
    assert load_edge_list(dense).node_ids is None


def test_gz_edge_list(tmp_path):
    p = tmp_path / "g.txt.gz"
    with gzip.open(p, "wt") as f:
        f.write("0 1\n1 2\n")
    d = load_graph(p)
    assert _pairs(d.graph) == _und([(0, 1), (1, 2)])


@pytest.mark.parametrize(
    "text, line, what",
    [
        ("0 1\n1 2\n3\n4 5\n", 3, "columns"),
        ("# c\n0 1\n\n1 2 3\n", 4, "columns"),
        ("0 1\n1 x\n", 2, "integer"),
        ("0 1\n2 3\n4 5.5\n", 3, "integer"),
        ("0 1\n2 3\n\x00\x01 4\n", 3, "control"),
        ("7\n", 1, "at least 2"),
        ("0 1\n99999999999999999999999 1\n", 2, "integer"),
    ],
)
def test_malformed_lines_name_the_line(tmp_path, text, line, what):
    p = tmp_path / "bad.txt"
    p.write_bytes(text.encode())
    with pytest.raises(EdgeListError, match=what) as ei:
        load_edge_list(p)
    assert ei.value.line == line and f"line {line}" in str(ei.value)


def test_garbage_and_empty_files_do_not_crash(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(20):
        p = tmp_path / f"r{i}.txt"
        p.write_bytes(rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8).tobytes())
        try:
            load_edge_list(p)
        except ValueError:
            pass
    e = tmp_path / "empty.txt"
    e.write_text("# nothing\n\n")
    assert load_edge_list(e).graph.num_edges == 0
    bad_gz = tmp_path / "x.txt.gz"
    bad_gz.write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(ValueError, match="cannot read"):
        load_edge_list(bad_gz)
    with pytest.raises(ValueError, match="longer than"):
        parse_edge_list(b"a " + b"b" * 300 + b"\n")


def test_parse_timing_1e6_lines():
    rng = np.random.default_rng(0)
    n = 10**6
    e = rng.integers(0, 10**5, (n, 2))
    data = ("\n".join(f"{a}\t{b}" for a, b in e.tolist()) + "\n").encode()
    t = time.perf_counter()
    r = parse_edge_list(data)
    dt = time.perf_counter() - t
    print(f"\nparse_edge_list: 1e6 integer lines in {dt:.2f} s ({len(data) / dt / 1e6:.0f} MB/s)")
    assert np.array_equal(r.src, e[:, 0]) and np.array_equal(r.dst, e[:, 1])
    assert dt < 30  # generous: the machine is shared


# ---------------- npz ----------------

def test_npz_roundtrip(tmp_path):
    ei = np.array([[0, 1, 2], [1, 2, 3]])
    x = np.random.default_rng(0).normal(size=(5, 3))
    y = np.array([0, 1, 0, 1, 2])
    p = tmp_path / "g.npz"
    np.savez(p, edge_index=ei, x=x, y=y)
    d = load_graph(p)
    assert d.num_nodes == 5 and d.x.dtype == torch.float32 and d.y.tolist() == y.tolist()
    assert torch.allclose(d.x, torch.from_numpy(x).float())
    assert _pairs(d.graph) == _und([(0, 1), (1, 2), (2, 3)])


@pytest.mark.parametrize(
    "arrays, match",
    [
        ({"x": np.zeros((3, 2))}, "missing the 'edge_index'"),
        ({"edge_index": np.zeros((3, 4), dtype=np.int64)}, r"shape \[2, E\]"),
        ({"edge_index": np.array([[0, 1], [1, 5]]), "x": np.zeros((3, 2))}, "index 5"),
        ({"edge_index": np.array([[0, -1], [1, 0]])}, "negative"),
        ({"edge_index": np.array([[0.5, 1], [1, 0]])}, "integers"),
        ({"edge_index": np.array([[0, 1], [1, 0]]), "x": np.array([[np.nan], [1.0]])}, "NaN"),
        ({"edge_index": np.array([[0, 1], [1, 0]]), "x": np.array([[np.inf], [1.0]])}, "NaN or infinite"),
        ({"edge_index": np.array([[0, 1], [1, 0]]), "y": np.array([0, 1, 2])}, "y must have shape"),
        ({"edge_index": np.array([[0, 1], [1, 0]]), "x": np.zeros(2)}, "x must have shape"),
    ],
)
def test_npz_errors(tmp_path, arrays, match):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    with pytest.raises((ValueError, TypeError), match=match):
        load_npz(p)


def test_npz_with_memmapped_features(tmp_path):
    x = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "g.npz", edge_index=np.array([[0, 1], [1, 5]]))
    d = load_graph(tmp_path / "g.npz", features=tmp_path / "x.npy")
    assert isinstance(d.x, np.memmap) and d.num_nodes == 6
    np.savez(tmp_path / "h.npz", edge_index=np.array([[0, 1], [1, 5]]), num_nodes=7)
    with pytest.raises(ValueError, match="rows"):
        load_graph(tmp_path / "h.npz", features=tmp_path / "x.npy")


def test_line_endings_bom_and_delimiters(tmp_path):
    p = tmp_path / "w.csv"
    p.write_bytes(b"\xef\xbb\xbfsource,target\r\n0,1\r\n1,2\r\n")
    assert _pairs(load_graph(p).graph) == _und([(0, 1), (1, 2)])
    p.write_bytes(b"0,1\r1,2\r")  # CR-only line endings
    assert _pairs(load_graph(p).graph) == _und([(0, 1), (1, 2)])
    q = tmp_path / "s.txt"
    q.write_text("0;1\n1;2\n")
    assert _pairs(load_edge_list(q, delimiter=";").graph) == _und([(0, 1), (1, 2)])
    with pytest.raises(ValueError, match="delimiter"):
        load_edge_list(q, delimiter="\u00e9")


def test_npz_pickle_and_corrupt_refused(tmp_path):
    p = tmp_path / "obj.npz"
    np.savez(p, edge_index=np.array([[0], [1]]), x=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(ValueError, match="safely"):
        load_npz(p)
    q = tmp_path / "corrupt.npz"
    q.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(ValueError, match="not a valid .npz"):
        load_npz(q)
    good = tmp_path / "good.npz"
    np.savez(good, edge_index=np.arange(2000).reshape(2, 1000))
    blob = good.read_bytes()
    rng = np.random.default_rng(0)
    for cut in rng.integers(1, len(blob), 15):
        t = tmp_path / f"trunc{cut}.npz"
        t.write_bytes(blob[:cut])
        with pytest.raises(ValueError):
            load_npz(t)
    for i in range(10):  # flipped bytes: a clear error or a valid graph, never a crash
        b = bytearray(blob)
        pos = rng.integers(0, len(b), 5)
        b_arr = np.frombuffer(bytes(b), dtype=np.uint8).copy()
        b_arr[pos] ^= 0xFF
        t = tmp_path / f"flip{i}.npz"
        t.write_bytes(b_arr.tobytes())
        try:
            load_npz(t)
        except (ValueError, TypeError):
            pass


def test_scipy_npz_and_conversions(tmp_path):
    sp = pytest.importorskip("scipy.sparse")
    m = sp.random(30, 30, density=0.1, random_state=0, format="csr")
    p = tmp_path / "adj.npz"
    sp.save_npz(p, m)
    d = load_graph(p, undirected=False)
    coo = m.tocoo()
    assert _pairs(d.graph) == {(a, b) for a, b in zip(coo.row.tolist(), coo.col.tolist()) if a != b}
    d2 = from_scipy(m, x=np.ones((30, 2)), undirected=True)
    assert d2.graph.is_symmetric and d2.x.shape == (30, 2)


def test_pyg_and_sparse_tensor_conversions():
    pyg_data = pytest.importorskip("torch_geometric.data")
    ts = pytest.importorskip("torch_sparse")
    ei = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    data = pyg_data.Data(edge_index=ei, x=torch.randn(4, 3), y=torch.tensor([0, 1, 1, 0]), num_nodes=4)
    d = from_pyg(data)
    assert d.num_nodes == 4 and _pairs(d.graph) == {(0, 1), (1, 0), (1, 2), (2, 1)} and d.y.tolist() == [0, 1, 1, 0]
    adj_t = ts.SparseTensor(row=ei[1], col=ei[0], sparse_sizes=(4, 4))
    d2 = from_sparse_tensor(adj_t)
    assert _pairs(d2.graph) == _pairs(d.graph)


# ---------------- OGB-style directories ----------------

def _write_gz(path, text):
    with gzip.open(path, "wt") as f:
        f.write(text)


def _ogb_toy(tmp_path, num_nodes: int):
    """An OGB-style raw/ folder with edges 0-1, 1-2, 2-3 and ``num_nodes`` nodes; returns raw/."""
    raw = tmp_path / "ogbl-toy" / "raw"
    raw.mkdir(parents=True)
    _write_gz(raw / "edge.csv.gz", "0,1\n1,2\n2,3\n")
    _write_gz(raw / "num-node-list.csv.gz", f"{num_nodes}\n")
    return raw


def test_ogb_dir(tmp_path):
    raw = _ogb_toy(tmp_path, 6)
    feats = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    _write_gz(raw / "node-feat.csv.gz", "\n".join(",".join(f"{v:.6f}" for v in r) for r in feats) + "\n")
    _write_gz(raw / "node-label.csv.gz", "0\n1\n0\n1\n2\n2\n")
    d = load_graph(tmp_path / "ogbl-toy")
    assert d.num_nodes == 6 and d.x.shape == (6, 4) and d.y.tolist() == [0, 1, 0, 1, 2, 2]
    assert np.allclose(d.x.numpy(), feats, atol=1e-5)
    assert _pairs(d.graph) == _und([(0, 1), (1, 2), (2, 3)])
    _write_gz(raw / "node-feat.csv.gz", "1,2,3,4\n" * 3 + "1,2,x,4\n" + "1,2,3,4\n" * 2)
    with pytest.raises(ValueError, match="line 4"):
        load_ogb_dir(tmp_path / "ogbl-toy")
    _write_gz(raw / "node-feat.csv.gz", "1,2,3,4\n" * 3 + "1,2,3\n" + "1,2,3,4\n" * 2)
    with pytest.raises(ValueError, match="line 4"):
        load_ogb_dir(tmp_path / "ogbl-toy")
    with pytest.raises(FileNotFoundError):
        load_ogb_dir(tmp_path)


def test_ogb_dir_with_separate_features(tmp_path):
    # The README's `load_graph("dir/", features="x.npy")`: the file replaces the directory's own
    # features, memory-mapped, and a file with the wrong number of rows names itself.
    _ogb_toy(tmp_path, 5)
    feats = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", feats)
    d = load_graph(tmp_path / "ogbl-toy", features=str(tmp_path / "x.npy"))
    assert isinstance(d.x, np.memmap) and d.num_nodes == 5
    np.testing.assert_array_equal(np.asarray(d.x), feats)
    np.save(tmp_path / "short.npy", feats[:4])
    with pytest.raises(ValueError, match="4 rows"):
        load_graph(tmp_path / "ogbl-toy", features=str(tmp_path / "short.npy"))


# ---------------- features ----------------

def test_mmap_features_and_gather_rows(tmp_path):
    x = np.random.default_rng(0).normal(size=(1000, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    p = tmp_path / "g.txt"
    p.write_text("0 1\n998 999\n")
    d = load_edge_list(p, features=tmp_path / "x.npy")
    assert isinstance(d.x, np.memmap)
    idx = torch.tensor([999, 3, 3, 0, 500])
    got = gather_rows(d.x, idx)
    assert got.dtype == torch.float32 and torch.equal(got, torch.from_numpy(x[idx.numpy()]))
    xt = torch.from_numpy(x)
    assert torch.equal(gather_rows(xt, idx), xt[idx])
    assert gather_rows(d.x, np.zeros(0, dtype=np.int64)).shape == (0, 8)
    with pytest.raises(IndexError):
        gather_rows(d.x, torch.tensor([1000]))
    with pytest.raises(IndexError):
        gather_rows(d.x, torch.tensor([-1]))
    with pytest.raises(ValueError, match="rows"):
        load_edge_list(p, features=tmp_path / "x.npy", num_nodes=1001)


@pytest.mark.parametrize("dtype", [np.float16, np.float64, ">f4", np.int32])
def test_gather_rows_dtypes(tmp_path, dtype):
    x = (np.random.default_rng(0).normal(size=(50, 3)) * 10).astype(dtype)
    np.save(tmp_path / "x.npy", x)
    xm = np.load(tmp_path / "x.npy", mmap_mode="r")
    idx = np.array([4, 49, 0, 4])
    got = gather_rows(xm, idx)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), x[idx].astype(np.float32), rtol=1e-6)
    assert gather_rows(xm, idx, dtype=torch.float64).dtype == torch.float64


def test_features_nan_in_memmap_and_text(tmp_path):
    x = np.zeros((70000, 2), dtype=np.float32)
    x[69999, 1] = np.nan
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(ValueError, match="row 69999"):
        load_features(tmp_path / "x.npy")
    (tmp_path / "f.csv").write_text("1,2\ninf,3\n")
    with pytest.raises(ValueError, match="NaN or infinite"):
        load_features(tmp_path / "f.csv")
    np.save(tmp_path / "o.npy", np.array([None, 1], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="numeric"):
        load_features(tmp_path / "o.npy")


def test_load_graph_dispatch_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_graph(tmp_path / "nope.txt")
    (tmp_path / "g.xyz").write_text("0 1\n")
    with pytest.raises(ValueError, match="unknown format"):
        load_graph(tmp_path / "g.xyz")
    with pytest.raises(ValueError, match="directory"):
        load_graph(tmp_path)
