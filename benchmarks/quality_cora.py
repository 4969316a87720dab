"""Link-prediction quality on Cora (Kipf's 85/5/10 edge split), mean ± std over seeds.

    python benchmarks/quality_cora.py                      # VGAE + GAE, full mode, 5 seeds
    python benchmarks/quality_cora.py --modes full minibatch --seeds 5
    python benchmarks/quality_cora.py --quick              # 1 seed, 20 epochs (smoke test)

Seed s fixes the split and the initialisation. Writes benchmarks/results/quality-cora.json/.md.
Bars (the VGAE paper): VGAE AUC 91.4 / AP 92.6, GAE AUC 91.0 / AP 92.0.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

if __package__ in (None, ""):  # run as a file: make `benchmarks` (and this checkout's scalevgae) importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import Stopwatch, write_files  # noqa: E402
from scalevgae.data import split_edges  # noqa: E402
from scalevgae.data.planetoid import find_planetoid_root, load_planetoid  # noqa: E402
from scalevgae.train import TrainConfig, Trainer  # noqa: E402

BARS = {"vgae": (0.914, 0.926), "gae": (0.910, 0.920)}


def run_one(data, model: str, mode: str, seed: int, **overrides) -> dict:
    split = split_edges(data.graph, 0.05, 0.10, seed=seed)
    cfg = TrainConfig(model=model, mode=mode, seed=seed, progress=False, **overrides)
    clock = Stopwatch()
    trainer = Trainer(cfg, data.x, split)
    res = trainer.fit()
    auc, ap = trainer.evaluate(split.test_pos, split.test_neg)
    return dict(model=model, mode=mode, seed=seed, test_auc=auc, test_ap=ap, val_auc=res.best_val_auc,
                val_ap=res.best_val_ap, best_epoch=res.best_epoch, epochs_run=res.epochs_run,
                seconds=clock.elapsed(), train_pairs_per_s=res.train_pairs_per_s)


def summarize(runs: list[dict]) -> list[dict]:
    rows = []
    for key in sorted({(r["model"], r["mode"]) for r in runs}):
        rs = [r for r in runs if (r["model"], r["mode"]) == key]
        row = dict(model=key[0], mode=key[1], seeds=len(rs))
        for m in ("test_auc", "test_ap", "val_auc"):
            vals = [r[m] for r in rs]
            row[m + "_mean"] = statistics.mean(vals)
            row[m + "_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        bar_auc, bar_ap = BARS[key[0]]
        row["meets_bar"] = row["test_auc_mean"] >= bar_auc and row["test_ap_mean"] >= bar_ap
        rows.append(row)
    return rows


def markdown(rows: list[dict], command: str) -> str:
    out = ["| model | mode | seeds | test AUC | test AP | val AUC | bar (AUC / AP) | meets |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        b = BARS[r["model"]]
        out.append(f"| {r['model'].upper()} | {r['mode']} | {r['seeds']} | "
                   f"{100 * r['test_auc_mean']:.1f} ± {100 * r['test_auc_std']:.1f} | "
                   f"{100 * r['test_ap_mean']:.1f} ± {100 * r['test_ap_std']:.1f} | "
                   f"{100 * r['val_auc_mean']:.1f} ± {100 * r['val_auc_std']:.1f} | "
                   f"{100 * b[0]:.1f} / {100 * b[1]:.1f} | {'yes' if r['meets_bar'] else 'no'} |")
    import torch

    env = f"torch {torch.__version__}, SCALEVGAE_BACKEND={os.environ.get('SCALEVGAE_BACKEND', '(auto)')}"
    return "\n".join(out) + f"\n\nCommand: `{command}`\n\nEnvironment: {env}. Test/val: held-out edges vs as many " \
        "sampled non-edges, scored on the latent means; mean ± std over seeds (seed = split and init).\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=None, help="folder with the ind.cora.* files")
    p.add_argument("--models", nargs="+", default=["vgae", "gae"], choices=["vgae", "gae"])
    p.add_argument("--modes", nargs="+", default=["full"], choices=["full", "minibatch"])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--quick", action="store_true", help="1 seed, 20 epochs")
    p.add_argument("--name", default="quality-cora")
    p.add_argument("--from-json", nargs="+", default=None,
                   help="only summarize the runs in these result files (e.g. written by parallel invocations)")
    args = p.parse_args(argv)
    if args.from_json:
        runs, cmds = [], []
        for path in args.from_json:
            with open(path) as f:
                blob = json.load(f)
            runs += blob["runs"]
            cmds.append(blob["command"])
        write(args.name, runs, " && ".join(cmds))
        return
    root = args.root or find_planetoid_root()
    if root is None or not os.path.isfile(os.path.join(root, "ind.cora.x")):
        sys.exit(f"Cora files not found (looked in {root}); pass --root")
    data = load_planetoid(root, "cora")
    seeds = 1 if args.quick else args.seeds
    over = dict(device=args.device)
    if args.quick:
        over["epochs"] = 20
    runs = []
    for mode in args.modes:
        for model in args.models:
            for seed in range(args.first_seed, args.first_seed + seeds):
                r = run_one(data, model, mode, seed, **over)
                print(json.dumps(r), flush=True)
                runs.append(r)
    command = "python benchmarks/quality_cora.py " + " ".join(argv if argv is not None else sys.argv[1:])
    write(args.name + ("-quick" if args.quick else ""), runs, command.strip())


def write(name: str, runs: list[dict], command: str) -> None:
    rows = summarize(runs)
    md = markdown(rows, command)
    print(md)
    write_files(name, {"summary": rows, "runs": runs, "command": command}, md)


if __name__ == "__main__":
    main()
