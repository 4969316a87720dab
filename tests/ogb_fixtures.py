"""Small OGB link-prediction directories written in OGB's exact on-disk format (for tests only)."""

import gzip

import numpy as np
import torch

from scalevgae.data.ogb import OGB_LINK

N = 240


def _write_csv_gz(path, rows):
    with gzip.open(path, "wt") as f:
        for r in rows:
            f.write(",".join(str(v) for v in np.atleast_1d(r)) + "\n")


def _community_edges(rng, n, m, directed):
    """``m`` distinct edges, 90 % inside 4 communities (learnable), no self loops."""
    comm = np.arange(n) % 4
    seen, out = set(), []
    while len(out) < m:
        a = int(rng.integers(n))
        b = int(rng.choice(np.flatnonzero(comm == comm[a]))) if rng.random() < 0.9 else int(rng.integers(n))
        key = (a, b) if directed else (min(a, b), max(a, b))
        if a != b and key not in seen:
            seen.add(key)
            out.append((a, b))
    return np.array(out, dtype=np.int64)


def write_ogb_dir(root, name, *, mrr_style):
    """A dataset directory exactly as LinkPropPredDataset leaves it after download."""
    d = root / name.replace("-", "_")
    (d / "raw").mkdir(parents=True)
    (d / "processed").mkdir()
    (d / "RELEASE_v1.txt").write_text("fixture\n")
    rng = np.random.default_rng(7 if mrr_style else 3)
    e = _community_edges(rng, N, 900, directed=mrr_style)
    perm = rng.permutation(len(e))
    tr, va, te = e[perm[:700]], e[perm[700:800]], e[perm[800:]]
    raw_edges = np.concatenate([tr, va, te])
    if not mrr_style:
        raw_edges = np.concatenate([raw_edges, tr[:5]])  # collab-like repeated collaborations
        tr = np.concatenate([tr, tr[:5]])
    _write_csv_gz(d / "raw" / "edge.csv.gz", raw_edges)
    _write_csv_gz(d / "raw" / "num-node-list.csv.gz", [N])
    _write_csv_gz(d / "raw" / "num-edge-list.csv.gz", [len(raw_edges)])
    feat = (np.eye(4)[np.arange(N) % 4] + 0.3 * rng.normal(size=(N, 4))).round(4)  # community + noise
    _write_csv_gz(d / "raw" / "node-feat.csv.gz", feat)
    split = d / "split" / OGB_LINK[name].split
    split.mkdir(parents=True)
    if mrr_style:  # ogbl-citation2: node_year, source/target nodes, 1000 negatives per source
        _write_csv_gz(d / "raw" / "node_year.csv.gz", rng.integers(1990, 2020, N))
        torch.save({"source_node": torch.from_numpy(tr[:, 0]), "target_node": torch.from_numpy(tr[:, 1])},
                   split / "train.pt")
        for part, pos in (("valid", va), ("test", te)):
            torch.save({"source_node": torch.from_numpy(pos[:, 0]), "target_node": torch.from_numpy(pos[:, 1]),
                        "target_node_neg": torch.from_numpy(rng.integers(0, N, (len(pos), 1000)))},
                       split / f"{part}.pt")
    else:  # ogbl-collab: edge weights and years, a shared edge_neg set
        years = rng.integers(2000, 2019, len(raw_edges))
        _write_csv_gz(d / "raw" / "edge_weight.csv.gz", rng.integers(1, 4, len(raw_edges)))
        _write_csv_gz(d / "raw" / "edge_year.csv.gz", years)
        torch.save({"edge": torch.from_numpy(tr), "weight": torch.ones(len(tr), dtype=torch.long),
                    "year": torch.from_numpy(years[: len(tr)])}, split / "train.pt")
        for part, pos in (("valid", va), ("test", te)):
            neg = rng.integers(0, N, (300, 2))
            torch.save({"edge": torch.from_numpy(pos), "edge_neg": torch.from_numpy(neg),
                        "weight": torch.ones(len(pos), dtype=torch.long)}, split / f"{part}.pt")
    return d


def write_ogb_root(root):
    """``root/ogbl_{collab,ppa,ddi,citation2}`` (Hits@K-style and MRR-style fixtures)."""
    import pathlib

    root = pathlib.Path(root)
    for name in ("ogbl-collab", "ogbl-ppa", "ogbl-ddi"):
        write_ogb_dir(root, name, mrr_style=False)
    write_ogb_dir(root, "ogbl-citation2", mrr_style=True)
