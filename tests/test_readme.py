"""The README is executable: every command of its ```bash blocks runs, as written, in one fresh
temporary directory (not the repository), with the venv's bin/ on PATH as after
``source .venv/bin/activate``. Training commands run at reduced sizes (see ``shrink``).

To exempt a command, add a row to SKIP (a regular expression matched against the command, and the
reason); to give commands an input file, add it to FILES. Nothing else needs to change here."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(REPO, "README.md")

# The one place to mark a README command as not run by this test: (regex, reason).
SKIP = [
    (r"^bash scripts/(demo|test)\.sh", "creates .venv and builds the extension; CI runs scripts/test.sh itself"),
    (r"^(FORCE_CUDA=1 )?pip install", "installs into the environment"),
    (r"^source \.venv/bin/activate", "this test puts the venv's bin/ on PATH instead"),
    (r"torchrun .*--nproc-per-node K", "needs K GPUs (and M machines)"),
    (r"^python benchmarks/", "benchmarks run for minutes and write benchmarks/results/"),
]


def _edges_csv(path):
    """A small graph with string ids (two communities) for ``--dataset edges.csv --ids str``."""
    rng = np.random.default_rng(0)
    rows = ["source,target"]
    for _ in range(600):
        a = int(rng.integers(0, 120))
        b = int(rng.integers(0, 60)) + (0 if a < 60 else 60) if rng.random() < 0.9 else int(rng.integers(0, 120))
        if a != b:
            rows.append(f"user{a},user{b}")
    with open(path, "w") as f:
        f.write("\n".join(rows) + "\n")


def _ogb_root(path):
    """``dataset/ogbl_*`` folders in OGB's on-disk format for the README's OGB commands."""
    from ogb_fixtures import write_ogb_root

    write_ogb_root(path)


# Input files the commands name, created in the temporary directory before the first command.
FILES = {"edges.csv": _edges_csv, "dataset": _ogb_root}


def commands(text):
    """(line number, command) of every ```bash block, continuation lines joined, comments dropped."""
    out, block, start, cont = [], False, 0, ""
    for i, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            block = line.strip() == "```bash"
            continue
        if not block:
            continue
        code = re.sub(r"\s+#.*$", "", line) if not line.lstrip().startswith("#") else ""
        if not cont:
            start = i
        if code.rstrip().endswith("\\"):
            cont += code.rstrip()[:-1] + " "
            continue
        cmd = " ".join((cont + code).split())
        cont = ""
        if cmd:
            out.append((start, cmd))
    return out


def shrink(cmd):
    """Training commands at test size: few nodes, a few steps, a checkpoint every step."""
    if not re.search(r"scalevgae train\b", cmd) or "--help" in cmd:
        return cmd
    cmd = re.sub(r"--nodes \d+", "--nodes 400", cmd)
    cmd = re.sub(r"--(steps|epochs) \d+", "", cmd)
    extra = " --steps 3" if "--resume" in cmd else " --steps 2 --checkpoint-every 1"
    return " ".join((cmd + extra + " --no-progress").split())


def _skip_reason(cmd):
    return next((why for pat, why in SKIP if re.search(pat, cmd)), None)


def test_readme_commands_parse():
    cmds = commands(open(README).read())
    assert any(c.startswith("scalevgae train") for _, c in cmds)
    assert all(not c.endswith("\\") for _, c in cmds)
    assert shrink("scalevgae train --nodes 1000000 --steps 20 --out r") == \
        "scalevgae train --nodes 400 --out r --steps 2 --checkpoint-every 1 --no-progress"


@pytest.mark.slow  # every README command: a dozen processes, each importing torch
def test_readme_commands_run(tmp_path):
    bindir = os.path.dirname(sys.executable)
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""), PYTHONPATH=REPO)
    env.pop("SCALEVGAE_PLANETOID_ROOT", None)  # the README relies on the default location
    for name, make in FILES.items():
        make(str(tmp_path / name))
    ran, skipped = [], []
    for line, cmd in commands(open(README).read()):
        why = _skip_reason(cmd)
        if why:
            skipped.append((line, cmd, why))
            continue
        run = shrink(cmd)
        r = subprocess.run(["bash", "-c", run], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"README.md:{line}: {run}\n{r.stdout[-1500:]}\n{r.stderr[-3000:]}"
        assert "Traceback" not in r.stderr, f"README.md:{line}: {run}\n{r.stderr[-3000:]}"
        ran.append(line)
    assert ran, "no README command ran"
    print(f"ran {len(ran)} README commands; skipped {len(skipped)}:",
          *(f"  README.md:{ln}: {c}  ({why})" for ln, c, why in skipped), sep="\n")
