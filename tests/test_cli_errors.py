"""The CLI's error contract: a user's mistake is one line on stderr naming the file or option, exit
status 2, no traceback, and nothing written. Each case runs the real command in a subprocess."""

import gzip
import os
import pickle
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--nodes", "60", "--avg-degree", "4", "--epochs", "1", "--no-progress"]
PHASE = re.compile(r"^scalevgae: .*( \.\.\.|: done in [0-9.]+ s)$")
PLANETOID_PARTS = ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    return str(path)


def _unwritable_dir(tmp):
    """An existing folder this process cannot write in (root ignores permission bits: use /proc/1)."""
    if os.geteuid() == 0:
        return "/proc/1"
    d = os.path.join(tmp, "ro")
    os.makedirs(d)
    os.chmod(d, 0o500)
    return d


def _setup(tmp):
    """Create the inputs of the catalogue; returns {name: path}."""
    f = {}
    f["header_only"] = _write(f"{tmp}/header.csv", "src,dst\n")
    f["zero_bytes"] = _write(f"{tmp}/empty.txt", "")
    f["one_node"] = _write(f"{tmp}/one.txt", "0 0\n")
    f["two_nodes"] = _write(f"{tmp}/two.txt", "0 1\n")
    f["tiny"] = _write(f"{tmp}/tiny.txt", "".join(f"{i} {i + 1}\n" for i in range(6)))
    f["path10"] = _write(f"{tmp}/path.txt", "".join(f"{i} {(i * 7 + 3) % 40}\n" for i in range(40)))
    f["bad_line"] = _write(f"{tmp}/bad.txt", "0 1\n1 2\nfoo bar\n")
    f["bad_gz"] = _write(f"{tmp}/edges.txt.gz", b"\x1f\x8b not really gzip")
    f["bad_npz"] = _write(f"{tmp}/g.npz", b"PK\x03\x04 garbage")
    f["unknown_ext"] = _write(f"{tmp}/graph.xyz", "0 1\n")
    np.save(f"{tmp}/feat2.npy", np.ones((2, 3), np.float32))
    f["feat2"] = f"{tmp}/feat2.npy"
    nan = np.ones((40, 3), np.float32)
    nan[5, 1] = np.nan
    np.save(f"{tmp}/nan.npy", nan)
    f["nan"] = f"{tmp}/nan.npy"
    f["a_file"] = _write(f"{tmp}/afile", "x")
    f["garbage_model"] = _write(f"{tmp}/garbage/model.pt", os.urandom(300))
    # a pickle header with an unknown protocol: torch warns before it fails (seen once from urandom)
    f["proto_model"] = _write(f"{tmp}/proto/model.pt", b"\x80\xb0" + bytes(range(256)))
    os.makedirs(f"{tmp}/trunc")
    torch.save({"format": 2, "state_dict": {"w": torch.ones(1000)}, "config": {}, "data": {}, "in_channels": 3},
               f"{tmp}/trunc/model.pt")
    raw = open(f"{tmp}/trunc/model.pt", "rb").read()
    _write(f"{tmp}/trunc/model.pt", raw[: len(raw) // 2])
    os.makedirs(f"{tmp}/ckpt")
    torch.save({"model": {}, "optimizer": {}, "trainer": {"epoch": 1}}, f"{tmp}/ckpt/checkpoint.pt")
    f["ckpt"] = f"{tmp}/ckpt/checkpoint.pt"
    torch.save({"weights": torch.ones(2)}, f"{tmp}/other.pt")
    f["other_pt"] = f"{tmp}/other.pt"
    # a Planetoid folder whose x file is a pickle that would run a shell command
    for part in PLANETOID_PARTS:
        _write(f"{tmp}/evil/ind.cora.{part}", pickle.dumps(_Evil(), protocol=2) if part == "x" else b"\x80\x02}q\x00.")
    os.makedirs(f"{tmp}/emptyroot")
    _write(f"{tmp}/oldrun/model.pt", b"an earlier run")
    _write(f"{tmp}/oldrun/metrics.json", "{}")
    _write(f"{tmp}/badrec/checkpoint.pt", b"x")
    _write(f"{tmp}/badrec/run.json", "{not json")
    with gzip.open(f"{tmp}/ok.txt.gz", "wt") as g:
        g.write("0 1\n")
    return f


# (name, argv with {placeholders}, a substring the one-line message must contain)
CASES = [
    ("unknown dataset", ["train", "--dataset", "nosuch", "--out", "{new}"], "nosuch"),
    ("empty edge list (header only)", ["train", "--dataset", "{header_only}", "--out", "{new}"], "header.csv"),
    ("empty edge list (0 bytes)", ["train", "--dataset", "{zero_bytes}", "--out", "{new}"], "empty.txt"),
    ("one-node graph", ["train", "--dataset", "{one_node}", "--out", "{new}"], "need at least"),
    ("two-node graph", ["train", "--dataset", "{two_nodes}", "--out", "{new}"], "need at least"),
    ("graph too small for the fractions", ["train", "--dataset", "{tiny}", "--out", "{new}"], "need at least 20 edges"),
    ("malformed edge-list line", ["train", "--dataset", "{bad_line}", "--ids", "int", "--out", "{new}"], "line 3"),
    ("corrupt gzip", ["train", "--dataset", "{bad_gz}", "--out", "{new}"], "edges.txt.gz"),
    ("corrupt npz", ["train", "--dataset", "{bad_npz}", "--out", "{new}"], "g.npz"),
    ("unknown file format", ["train", "--dataset", "{unknown_ext}", "--out", "{new}"], "graph.xyz"),
    ("feature file with too few rows", ["train", "--dataset", "{path10}", "--features", "{feat2}", "--out", "{new}"],
     "feat2.npy"),
    ("NaN in features", ["train", "--dataset", "{path10}", "--features", "{nan}", "--out", "{new}"], "nan.npy"),
    ("missing features file", ["train", "--dataset", "{path10}", "--features", "{tmp}/nofeat.npy", "--out", "{new}"],
     "--features"),
    ("Planetoid root without the files", ["train", "--dataset", "cora", "--root", "{tmp}/emptyroot", "--out", "{new}"],
     "--root"),
    ("malicious pickle Planetoid file", ["train", "--dataset", "cora", "--root", "{tmp}/evil", "--out", "{new}"],
     "ind.cora.x"),
    ("--out in an unwritable location", ["train", "--out", "/proc/scalevgae-run", *TINY], "--out"),
    ("--out an existing unwritable folder", ["train", "--out", "{unwritable}", *TINY], "--out"),
    ("--out naming a file", ["train", "--out", "{a_file}", *TINY], "--out"),
    ("--out holding an earlier run", ["train", "--out", "{tmp}/oldrun", *TINY], "--overwrite"),
    ("--resume without a checkpoint", ["train", "--resume", "--out", "{new}"], "checkpoint"),
    ("--resume with a damaged run.json", ["train", "--resume", "--out", "{tmp}/badrec"], "run.json"),
    ("bad integer option", ["train", "--hidden", "abc", "--out", "{new}"], "--hidden"),
    ("bad choice", ["train", "--model", "foo", "--out", "{new}"], "--model"),
    ("bad fanouts", ["train", "--fanouts", "a,b", "--out", "{new}"], "--fanouts"),
    ("unknown option", ["train", "--no-such-option", "--out", "{new}"], "--no-such-option"),
    ("fractions sum to 1 or more", ["train", "--val", "0.6", "--test", "0.5", "--out", "{new}"], "--val"),
    ("dropout out of range", ["train", "--dropout", "1.5", "--out", "{new}"], "--dropout"),
    ("non-positive synthetic size", ["train", "--nodes", "0", "--out", "{new}"], "--nodes"),
    ("--fanouts in full mode", ["train", "--fanouts", "4,3", "--out", "{new}", *TINY], "--fanouts"),
    ("eval without a model", ["eval", "--out", "{new}"], "model.pt"),
    ("corrupted model.pt", ["eval", "--out", "{tmp}/garbage"], "model.pt"),
    ("model.pt with an unknown pickle protocol", ["eval", "--out", "{tmp}/proto"], "model.pt"),
    ("truncated model.pt", ["eval", "--out", "{tmp}/trunc"], "model.pt"),
    ("eval --checkpoint checkpoint.pt", ["eval", "--checkpoint", "{ckpt}", "--out", "{new}"], "checkpoint.pt"),
    ("a .pt file that is not a model", ["embed", "--checkpoint", "{other_pt}", "--out", "{new}"], "other.pt"),
    ("--checkpoint naming a folder", ["predict", "--checkpoint", "{tmp}/trunc", "--out", "{new}"], "trunc"),
    ("predict --top-k 0", ["predict", "--top-k", "0", "--out", "{tmp}/trunc"], "--top-k"),
    ("embed --output unwritable", ["embed", "--out", "{tmp}/trunc", "--output", "/proc/scalevgae.npy"], "--output"),
]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Run every case as its own ``python -m scalevgae`` process, a few at a time (each pays torch's
    import); returns {name: (CompletedProcess, the case's fresh --out path, its cwd)} and the input
    folder's listing before and after."""
    tmp = str(tmp_path_factory.mktemp("cli_errors"))
    f = _setup(tmp)
    f["tmp"] = tmp
    f["unwritable"] = _unwritable_dir(tmp)
    before = sorted(os.listdir(tmp))
    env = dict(os.environ, PYTHONPATH=REPO, SCALEVGAE_PLANETOID_ROOT=os.path.join(tmp, "emptyroot"))

    def run(i_case):
        i, (name, argv, _) = i_case
        cwd = str(tmp_path_factory.mktemp(f"case{i}"))
        new = os.path.join(cwd, "run")
        args = [a.format(new=new, **f) for a in argv]
        r = subprocess.run([sys.executable, "-m", "scalevgae", *args], capture_output=True, text=True, env=env,
                           cwd=cwd, timeout=600)
        return name, (r, new, cwd)

    with ThreadPoolExecutor(max_workers=max(2, 2 * (os.cpu_count() or 1))) as pool:
        out = dict(pool.map(run, enumerate(CASES)))
    return out, before, sorted(os.listdir(tmp))


def test_catalogue_is_large_enough():
    assert len(CASES) >= 25 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.slow  # one python process per case: ~40 torch imports
@pytest.mark.parametrize("name,needle", [(c[0], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_user_error_is_one_line(results, name, needle):
    out, before, after = results
    r, new, cwd = out[name]
    # Slow phases may announce themselves first ("scalevgae: loading cora ..."); the error is one line.
    lines = [ln for ln in r.stderr.strip().splitlines() if not PHASE.match(ln)]
    err = "\n".join(lines)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr and "weights_only" not in r.stderr, r.stderr
    assert len(lines) == 1, r.stderr
    assert "error" in err and needle in err, err
    assert not os.path.exists(new), "a failed command left a run folder behind"
    assert not os.path.exists(os.path.join(cwd, "pwned.txt")) and not os.path.exists("pwned.txt")
    assert after == before, "a failed command wrote into the input folder"
