"""Checkpoints (model, optimizer, scheduler, RNG states, loader position, trainer state), the saved
model file and the run record of a run folder."""

from __future__ import annotations

import json
import os
from typing import Any, Optional

import torch

from scalevgae._util import load_tensors_file

CHECKPOINT_NAME = "checkpoint.pt"


class ModelFileError(ValueError):
    """A model file or checkpoint that is missing, damaged, or not scalevgae's."""


def rng_state(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    for name, g in generators.items():
        state["gen_" + name] = g.get_state()
    return state


def set_rng_state(state: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, g in generators.items():
        if "gen_" + name in state:
            g.set_state(state["gen_" + name])


def save_checkpoint(path: str, state: dict[str, Any]) -> None:
    """Write atomically (temp file + rename) so a run killed mid-write keeps the last good one."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str, map_location: Optional[Any] = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors and plain containers only)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        return load_tensors_file(path, map_location)
    except Exception as e:  # noqa: BLE001 - torch raises many types; its message advises weights_only=False
        raise ModelFileError(f"{path}: damaged checkpoint ({type(e).__name__}); delete it and retrain, or restore "
                             "a good copy") from None


# ---- the model file (DIR/model.pt) and the run record (DIR/run.json) ----
MODEL_NAME = "model.pt"
RUN_NAME = "run.json"
MODEL_FORMAT = 2
_MODEL_KEYS = ("state_dict", "config", "data", "in_channels")


def save_model(path: str, model: torch.nn.Module, record: dict[str, Any], in_channels: int) -> None:
    """Write the trained weights with the run record (config, dataset, fingerprint, split), atomically.

    Read back with :func:`load_model_file` (``torch.load(weights_only=True)`` works too)."""
    blob = {"format": MODEL_FORMAT, "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "in_channels": int(in_channels), **record}
    save_checkpoint(path, blob)


def load_model_file(path: str) -> dict[str, Any]:
    """The blob :func:`save_model` wrote; ModelFileError (one line naming the file) otherwise."""
    if os.path.isdir(path):
        raise ModelFileError(f"{path} is a folder; pass the model file inside it (model.pt) or --out DIR")
    if not os.path.isfile(path):
        raise ModelFileError(f"no saved model at {path} (train one with `scalevgae train --out DIR`)")
    try:
        blob = load_tensors_file(path, "cpu")
    except Exception as e:  # noqa: BLE001 - torch raises many types; its message advises weights_only=False
        raise ModelFileError(f"{path}: damaged or not a scalevgae model file ({type(e).__name__}); "
                             "retrain with `scalevgae train`") from None
    if isinstance(blob, dict) and "optimizer" in blob and "trainer" in blob:
        raise ModelFileError(f"{path} is a training checkpoint, not a model file; pass model.pt from the same "
                             "folder, or continue training with `scalevgae train --resume --out DIR`")
    if not isinstance(blob, dict) or any(k not in blob for k in _MODEL_KEYS):
        raise ModelFileError(f"{path}: not a scalevgae model file (expected the model.pt `scalevgae train` writes)")
    if int(blob.get("format", 1)) > MODEL_FORMAT:
        raise ModelFileError(f"{path}: written by a newer scalevgae (model format {blob['format']}); upgrade")
    return blob


def build_saved_model(blob: dict[str, Any], device: torch.device) -> torch.nn.Module:
    """The model of a :func:`load_model_file` blob, in eval mode on ``device``."""
    from scalevgae.models import build_model
    from scalevgae.train.config import TrainConfig

    cfg = TrainConfig.from_dict(blob["config"])
    model = build_model(cfg.model, int(blob["in_channels"]), cfg.hidden, cfg.latent, cfg.dropout)
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError:
        raise ModelFileError("the model file's weights do not match its config (damaged file); retrain with "
                             "`scalevgae train`") from None
    return model.to(device).eval()


def write_run_record(out_dir: str, record: dict[str, Any]) -> None:
    """DIR/run.json: what ``train --resume --out DIR`` and ``eval/embed/predict`` need besides weights."""
    tmp = os.path.join(out_dir, RUN_NAME + ".tmp")
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1)
    os.replace(tmp, os.path.join(out_dir, RUN_NAME))


def read_run_record(out_dir: str) -> dict[str, Any]:
    path = os.path.join(out_dir, RUN_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--out {out_dir}: no {RUN_NAME} (not a scalevgae run folder)")
    try:
        with open(path) as f:
            rec = json.load(f)
    except (ValueError, UnicodeDecodeError):
        raise ModelFileError(f"{path}: damaged run record (not JSON); start a new run") from None
    if not isinstance(rec, dict) or "config" not in rec or "data" not in rec:
        raise ModelFileError(f"{path}: not a scalevgae run record; start a new run")
    return rec
