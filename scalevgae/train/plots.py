"""Pictures of a run: latent.png (the latent means, VGAE Fig. 1) and curves.png (the training curves)."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ImportError("--plot needs matplotlib (pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_latent(z: torch.Tensor, y: Optional[torch.Tensor], path: str, *, title: str = "",
                max_points: int = 20000, seed: int = 0) -> None:
    """2-D PCA projection of the latent means ``z [N, d]``, coloured by class when labels ``y [N]``
    exist (label -1: unlabelled, grey). Axis limits cover the 1st-99th percentile (plus a margin),
    so a few outliers do not squeeze the cloud into a corner."""
    plt = _pyplot()
    z = z.detach().float().cpu()
    idx = torch.arange(z.size(0))
    if z.size(0) > max_points:
        idx = torch.randperm(z.size(0), generator=torch.Generator().manual_seed(seed))[:max_points]
    zc = z[idx] - z[idx].mean(0)
    _, s, v = torch.linalg.svd(zc, full_matrices=False)
    p = (zc @ v[:2].t()).numpy() if v.size(0) >= 2 else np.c_[zc.numpy()[:, :1], np.zeros(len(idx))]
    var = (s**2 / max(float((s**2).sum()), 1e-30)).tolist() + [0.0, 0.0]
    fig, ax = plt.subplots(figsize=(7, 6))
    if y is None:
        ax.scatter(p[:, 0], p[:, 1], s=4, alpha=0.6)
    else:
        lab = y.cpu()[idx].numpy()
        classes = np.unique(lab)
        cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
        for i, c in enumerate(classes):
            m = lab == c
            color = "lightgrey" if c < 0 else cmap(i % cmap.N)
            ax.scatter(p[m, 0], p[m, 1], s=4, alpha=0.7, color=color,
                       label="unlabelled" if c < 0 else f"class {c}")
        if len(classes) <= 20:
            ax.legend(markerscale=3, fontsize=8, loc="best", framealpha=0.8)
    for col, setter in ((p[:, 0], ax.set_xlim), (p[:, 1], ax.set_ylim)):
        lo, hi = np.percentile(col, [1, 99]) if col.size else (0.0, 1.0)
        pad = 0.1 * max(hi - lo, 1e-12)
        setter(lo - pad, hi + pad)
    ax.set_xlabel(f"PC 1 ({100 * var[0]:.0f}% of variance)")
    ax.set_ylabel(f"PC 2 ({100 * var[1]:.0f}% of variance)")
    ax.set_title(title or "latent means (PCA)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_curves(rows: Sequence[dict[str, Any]], path: str, *, best_epoch: Optional[int] = None,
                title: str = "") -> None:
    """Training loss and validation AUC/AP per epoch (the rows of metrics.jsonl), the restored best
    epoch marked."""
    plt = _pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    ep = [r["epoch"] for r in rows]
    a1.plot(ep, [r["loss"] for r in rows], color="tab:blue")
    a1.set_xlabel("epoch")
    a1.set_ylabel("training loss")
    a1.set_title("training loss")
    val = [r for r in rows if "val_auc" in r]
    if val:
        a2.plot([r["epoch"] for r in val], [r["val_auc"] for r in val], marker=".", label="validation AUC")
        a2.plot([r["epoch"] for r in val], [r["val_ap"] for r in val], marker=".", label="validation AP")
    a2.set_xlabel("epoch")
    a2.set_ylabel("score")
    a2.set_title("validation")
    if best_epoch:
        for ax in (a1, a2):
            ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1,
                       label=f"best epoch {best_epoch} (restored)" if ax is a2 else None)
    a2.legend(loc="lower right", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
