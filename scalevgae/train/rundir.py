"""The run folder (``--out DIR``): checked for writability before any work, never left half-stale."""

from __future__ import annotations

import os
import tempfile

from scalevgae.train.checkpoint import CHECKPOINT_NAME, MODEL_NAME, RUN_NAME

ORDER_NAME = "order.npy"  # --reorder: the training node order, perm[new_id] = old_id
# Everything scalevgae writes into a run folder; --overwrite removes these and nothing else.
RUN_FILES = (MODEL_NAME, RUN_NAME, CHECKPOINT_NAME, "metrics.json", "metrics.jsonl", "embeddings.npy",
             "nodes.csv", "topk.csv", "eval.json", "latent.png", "curves.png", ORDER_NAME)


def check_writable(path: str, option: str = "--out", *, is_dir: bool = True) -> None:
    """Raise (one line naming ``option``) unless ``path`` can be created or written: a folder when
    ``is_dir``, else a file. Nothing is left behind."""
    if os.path.exists(path):
        if is_dir and not os.path.isdir(path):
            raise FileExistsError(f"{option} {path} is a file, not a folder; pass a folder (it is created if "
                                  "missing)")
        if not is_dir and os.path.isdir(path):
            raise IsADirectoryError(f"{option} {path} is a folder; pass a file name")
    probe_dir = path if is_dir else os.path.dirname(os.path.abspath(path))
    while not os.path.exists(probe_dir):
        probe_dir = os.path.dirname(probe_dir)
    if not os.path.isdir(probe_dir):
        raise NotADirectoryError(f"{option} {path}: {probe_dir} is a file, not a folder; choose another {option}")
    try:
        fd, tmp = tempfile.mkstemp(dir=probe_dir, prefix=".scalevgae-probe-")
    except OSError as e:
        raise PermissionError(f"{option} {path}: cannot write in {probe_dir} ({e.strerror}); choose another "
                              f"{option} or make it writable") from None
    os.close(fd)
    os.remove(tmp)


def existing_run_files(out_dir: str) -> list[str]:
    return [f for f in RUN_FILES if os.path.exists(os.path.join(out_dir, f))]


def check_fresh(out_dir: str, overwrite: bool) -> None:
    """Refuse a folder that already holds a run unless ``overwrite``."""
    found = existing_run_files(out_dir)
    if found and not overwrite:
        raise FileExistsError(f"--out {out_dir} already holds a run ({', '.join(found[:3])}); pass --overwrite to "
                              "replace it, --resume to continue it, or choose another --out")


def clear(out_dir: str) -> None:
    """Create ``out_dir`` and remove the files of an earlier run (only those scalevgae writes)."""
    os.makedirs(out_dir, exist_ok=True)
    for f in existing_run_files(out_dir):
        os.remove(os.path.join(out_dir, f))
