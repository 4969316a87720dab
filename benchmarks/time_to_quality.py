"""Time to quality: validation AUC against wall-clock seconds, scalevgae (each mode, defaults)
against PyG's VGAE recipe, on the same split of one graph.

    python benchmarks/time_to_quality.py --graph cora
    python benchmarks/time_to_quality.py --graph synthetic --nodes 100000
    python benchmarks/time_to_quality.py --graph my.npz --systems auto pyg --seeds 0 1 2

Graphs: cora | citeseer | pubmed (Planetoid files, ../shared/datasets/planetoid or --root),
synthetic (the CLI's built-in planted-partition graph, --nodes), or any file ``scalevgae train
--dataset`` reads. Split: Kipf's 85/5/10 with the seed (split seed = model seed, as the CLI).

Systems: ``auto`` / ``full`` / ``minibatch`` run ``Trainer(TrainConfig(mode=...))`` with every
other setting at its default (``--set key=value`` overrides, e.g. ``--set patience=0``);
``pyg`` is PyG's examples/autoencoder.py VGAE recipe (GCNConv encoder 2x hidden -> latent,
``torch_geometric.nn.VGAE``, full-batch, Adam lr 0.01, ``recon_loss`` with one sampled negative
per positive + KL / N, 400 epochs, no early stopping) validating every ``--pyg-eval-every``
epochs. Curves: validation AUC after each evaluation against the wall clock since training
started (training + validation; the test scoring done for the table is taken off the clock).
Table: final test AUC/AP (the weights each system ends with: the restored best for scalevgae,
the last for PyG), training seconds, and ``t_q``: when validation AUC first came within 0.005 of
its final value (end / t_q is what issue 18 bounds by 1.5), also in load-independent units: optimizer
steps (``end_over_t_q_steps``; evaluation cost not counted) and CPU seconds of the process
(``time.process_time``, all its threads; ``end_over_t_q_cpu``), since the wall clock of a shared
machine stretches with other jobs (and stops while a process is paused).

Writes benchmarks/results/time-to-quality-<graph>.{png,md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# As `import scalevgae` does, but before torch loads (idle OpenMP threads spinning cost 5x here).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from scalevgae.data import split_edges  # noqa: E402
from scalevgae.data.datasets import DatasetSpec, load_dataset  # noqa: E402
from scalevgae.metrics import link_scores  # noqa: E402
from scalevgae.train import TrainConfig, Trainer  # noqa: E402
from scalevgae.train.evaluation import monitored  # noqa: E402

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
WITHIN = 0.005  # "came within 0.005 of its final value"


def _value(s: str) -> Any:
    if s == "None":
        return None
    for cast in (int, float):
        try:
            return cast(s)
        except ValueError:
            pass
    return s


def time_to_quality(curve: list[dict], final: float, unit: str = "seconds") -> float:
    """When (``unit``: seconds, cpu_seconds or step) validation AUC first came within ``WITHIN``
    of ``final``."""
    return next(p[unit] for p in curve if p["val_auc"] >= final - WITHIN)


def end_over_t_q(run: dict, unit: str) -> Optional[float]:
    """end / t_q of a run in ``unit`` (None for runs recorded before the unit was)."""
    if unit not in run["curve"][0]:
        return None
    end = run["steps"] if unit == "step" else run[unit]
    return end / max(time_to_quality(run["curve"], run["final_val_auc"], unit), 1e-9)


def replay(curve: list[dict], patience: Optional[int], min_delta: float, monitor: str = "auc") -> dict:
    """The stopping rule (the Trainer's) replayed on a curve recorded without stopping: where it
    stops, the restored best evaluation's test AUC/AP, and end / t_q. Exact for the quality (the
    rule does not change the trajectory); times are the recorded ones."""
    best, ref, bad, stop = -1, -1.0, 0, len(curve) - 1
    for i, p in enumerate(curve):
        score = monitored(monitor, dict(auc=p["val_auc"], ap=p.get("val_ap")))
        if best < 0 or score > monitored(monitor, dict(auc=curve[best]["val_auc"], ap=curve[best].get("val_ap"))):
            best = i
        if score - min_delta > ref:
            ref, bad = score, 0
        else:
            bad += 1
            if patience and bad >= patience:  # 0 or None: never
                stop = i
                break
    b, seen = curve[best], curve[: stop + 1]
    ratio = {u: seen[-1][u] / max(time_to_quality(seen, b["val_auc"], u), 1e-9) if u in b else None
             for u in ("seconds", "cpu_seconds", "step")}
    return dict(patience=patience, min_delta=min_delta, monitor=monitor, stop_eval=stop + 1,
                stop_epoch=seen[-1]["epoch"], stop_step=seen[-1].get("step"), seconds=seen[-1]["seconds"],
                test_auc=b["test_auc"], test_ap=b["test_ap"], final_val_auc=b["val_auc"],
                end_over_t_q=ratio["seconds"], end_over_t_q_cpu=ratio["cpu_seconds"],
                end_over_t_q_steps=ratio["step"])


def oracle(curve: list[dict], bound: float = 1.5) -> dict:
    """The most any stopping rule can get out of a curve recorded without stopping.

    A rule that returns evaluation ``j``'s weights ends at or after step ``s_j``, and its final
    validation AUC is ``val_auc[j]``, so its ``end / t_q`` in steps is at least
    ``s_j / t_q(val_auc[j])`` (equality: stopping right at ``j``, no patience; in wall seconds for
    curves recorded without steps, where validation time makes it only approximately a bound).
    Returns that lower bound and the test AUC/AP of ``j`` for the evaluation with the best test AP
    overall (``best_*``) and for the best-test-AP one among those whose bound is ``<= bound``
    (``feasible_*``; None if there is none).
    """
    unit = "step" if "step" in curve[0] else "seconds"  # curves recorded before steps were: wall seconds
    rows = [dict(step=p.get("step"), bound=p[unit] / max(time_to_quality(curve, p["val_auc"], unit), 1e-9),
                 test_auc=p["test_auc"], test_ap=p["test_ap"]) for p in curve]
    best = max(rows, key=lambda r: r["test_ap"])
    ok = [r for r in rows if r["bound"] <= bound]
    feas = max(ok, key=lambda r: r["test_ap"]) if ok else None
    out = {f"best_{k}": v for k, v in best.items()}
    out.update({f"feasible_{k}": (feas or {}).get(k) for k in best})
    return out


def oracle_table(paths: list[str], bound: float = 1.5) -> None:
    """Per recorded run: the best test AP any stopping rule could return, and the best one a rule
    ending within ``bound`` x t_q could (see :func:`oracle`)."""
    cols = ["file", "system", "seed", "evals", "best_step", "best_bound", "best_test_auc", "best_test_ap",
            "feasible_step", "feasible_bound", "feasible_test_auc", "feasible_test_ap"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for path in paths:
        with open(path) as f:
            runs = json.load(f)["runs"]
        for r in runs:
            row = dict(oracle(r["curve"], bound), file=os.path.basename(path), system=r["system"], seed=r["seed"],
                       evals=len(r["curve"]))
            lines.append("| " + " | ".join(f"{row[c]:.4g}" if isinstance(row[c], float) else
                                           ("—" if row[c] is None else str(row[c])) for c in cols) + " |")
    print("\n".join(lines))


def run_ours(x: torch.Tensor, split, mode: str, seed: int, overrides: dict) -> dict:
    """Train with defaults (plus overrides); curve of (wall seconds, val AUC) and test AUC/AP
    after each evaluation, the test scoring off the clock."""
    cfg = TrainConfig(mode=mode, seed=seed, progress=False, **overrides)
    tr = Trainer(cfg, x, split)
    off = [0.0]
    tests: list[tuple[float, float]] = []
    validate = tr.validate

    def validate_and_test() -> dict[str, float]:
        out = validate()
        cpus.append(time.process_time() - cpu0 - cpu_off[0])
        t, c = time.perf_counter(), time.process_time()
        from scalevgae.train.trainer import _swapped

        with _swapped(tr.model, tr.ema_state):
            tests.append(tr.evaluate(split.test_pos, split.test_neg))
        off[0] += time.perf_counter() - t
        cpu_off[0] += time.process_time() - c
        offs.append(off[0])
        return out

    offs: list[float] = []
    cpus: list[float] = []
    cpu_off = [0.0]
    tr.validate = validate_and_test  # type: ignore[method-assign]
    t0, cpu0 = time.perf_counter(), time.process_time()
    res = tr.fit()
    seconds = time.perf_counter() - t0 - off[0]
    cpu_seconds = time.process_time() - cpu0 - cpu_off[0]
    evals = [r for r in res.history if "val_auc" in r]
    curve = [dict(seconds=r["elapsed_s"] - o, cpu_seconds=c, step=r["step"], val_auc=r["val_auc"],
                  val_ap=r["val_ap"], test_auc=ta, test_ap=tp, epoch=r["epoch"])
             for r, o, c, (ta, tp) in zip(evals, offs, cpus, tests)]
    auc, ap = tr.evaluate(split.test_pos, split.test_neg)
    return dict(system=f"scalevgae {res.mode}" + (" (auto)" if mode == "auto" else ""), mode=res.mode,
                mode_reason=res.mode_reason, seed=seed, seconds=seconds, cpu_seconds=cpu_seconds, test_auc=auc,
                test_ap=ap, final_val_auc=res.best_val_auc, best_epoch=res.best_epoch, evaluations=len(curve),
                stopped_early=res.stopped_early, steps=res.steps, curve=curve)


def run_pyg(x: torch.Tensor, split, seed: int, *, epochs: int, eval_every: int, hidden: int = 32,
            latent: int = 16) -> dict:
    """PyG's examples/autoencoder.py VGAE (full batch) on the same split."""
    from benchmarks.train_pyg import pyg_vgae

    torch.manual_seed(seed)
    n = x.size(0)
    ei = split.train_graph.edge_index
    model = pyg_vgae(x.size(1), hidden, latent)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)

    def scores(pos, neg) -> tuple[float, float]:
        model.eval()
        with torch.no_grad():
            z = model.encode(x, ei)
            s = link_scores((z[pos[0]] * z[pos[1]]).sum(-1), (z[neg[0]] * z[neg[1]]).sum(-1))
        model.train()
        return s

    curve, off, cpu_off = [], 0.0, 0.0
    t0, cpu0 = time.perf_counter(), time.process_time()
    for epoch in range(1, epochs + 1):
        model.train()
        opt.zero_grad()
        z = model.encode(x, ei)
        loss = model.recon_loss(z, split.train_pos) + model.kl_loss() / n
        loss.backward()
        opt.step()
        if epoch % eval_every == 0 or epoch == epochs:
            val_auc, val_ap = scores(split.val_pos, split.val_neg)
            t, c = time.perf_counter(), time.process_time()
            ta, tp = scores(split.test_pos, split.test_neg)
            off += time.perf_counter() - t
            cpu_off += time.process_time() - c
            curve.append(dict(seconds=time.perf_counter() - t0 - off, cpu_seconds=time.process_time() - cpu0 - cpu_off,
                              step=epoch, val_auc=val_auc, val_ap=val_ap, test_auc=ta, test_ap=tp, epoch=epoch))
    seconds, cpu_seconds = time.perf_counter() - t0 - off, time.process_time() - cpu0 - cpu_off
    return dict(system="pyg VGAE (examples/autoencoder.py)", mode="pyg", seed=seed, seconds=seconds,
                cpu_seconds=cpu_seconds,
                test_auc=curve[-1]["test_auc"], test_ap=curve[-1]["test_ap"], final_val_auc=curve[-1]["val_auc"],
                best_epoch=epochs, evaluations=len(curve), stopped_early=False, steps=epochs, curve=curve)


X_LABELS = {"seconds": "wall-clock seconds since training started (training + validation)",
            "cpu_seconds": "CPU seconds of the process since training started (training + validation)"}


def plot(runs: list[dict], title: str, path: str, x: str = "seconds") -> None:
    """Validation AUC (and, where recorded, AP in a second panel) against ``x`` (a curve key)."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with_ap = all("val_ap" in r["curve"][0] for r in runs)
    fig, axes = plt.subplots(1, 2 if with_ap else 1, figsize=(13 if with_ap else 8, 5), squeeze=False)
    ax = axes[0][0]
    colors = {}
    for r in runs:
        c = colors.setdefault(r["system"], f"C{len(colors)}")
        xs = [p[x] for p in r["curve"]]
        ys = [p["val_auc"] for p in r["curve"]]
        first = sum(1 for q in runs if q["system"] == r["system"] and q is not r and runs.index(q) < runs.index(r))
        label = None
        if first == 0:
            same = [q for q in runs if q["system"] == r["system"]]
            label = (f"{r['system']}: test AUC {statistics.mean(q['test_auc'] for q in same):.3f} / "
                     f"AP {statistics.mean(q['test_ap'] for q in same):.3f}, "
                     f"{statistics.mean(q['seconds'] for q in same):.0f} s wall"
                     + (f", {statistics.mean(q['cpu_seconds'] for q in same):.0f} s CPU" if "cpu_seconds" in r else "")
                     + (f" (mean of {len(same)} seeds)" if len(same) > 1 else ""))
        ax.plot(xs, ys, color=c, lw=1.2, alpha=0.85, label=label)
        ax.plot(xs[-1:], ys[-1:], "o", color=c, ms=4)
        if with_ap:
            axes[0][1].plot(xs, [p["val_ap"] for p in r["curve"]], color=c, lw=1.2, alpha=0.85)
            axes[0][1].plot(xs[-1:], [r["curve"][-1]["val_ap"]], "o", color=c, ms=4)
    for a, key in zip(axes[0], ("val_auc", "val_ap")):
        a.set_xscale("log")
        a.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        a.set_xlabel(X_LABELS.get(x, x) + ", log scale", fontsize=9)
        a.set_ylabel("validation " + key[4:].upper())
        lo = min(min(p[key] for p in r["curve"]) for r in runs)
        hi = max(max(p[key] for p in r["curve"]) for r in runs)
        a.set_ylim(max(lo, hi - 0.25) - 0.01, hi + 0.01)
        a.grid(True, which="both", alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def replay_table(paths: list[str], patiences: list, deltas: list[float], monitors: list[str]) -> None:
    """Mean over the recorded runs of each system, per (monitor, patience, min_delta)."""
    runs = []
    for path in paths:
        with open(path) as f:
            runs += json.load(f)["runs"]
    cols = ["system", "monitor", "patience", "min_delta", "seeds", "seconds", "end_over_t_q_max",
            "end_over_t_q_steps_max", "test_auc", "test_ap"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for system in dict.fromkeys(r["system"] for r in runs):
        rs = [r for r in runs if r["system"] == system]
        for mon, pat in ((m, p) for m in monitors for p in patiences):
            for dl in deltas if pat is not None else [0.0]:
                rep = [replay(r["curve"], pat, dl, mon) for r in rs]
                row = dict(system=system, monitor=mon, patience=pat, min_delta=dl, seeds=len(rep),
                           seconds=statistics.mean(x["seconds"] for x in rep),
                           end_over_t_q_max=max(x["end_over_t_q"] for x in rep),
                           end_over_t_q_steps_max=max((x["end_over_t_q_steps"] or 0.0) for x in rep) or None,
                           test_auc=statistics.mean(x["test_auc"] for x in rep),
                           test_ap=statistics.mean(x["test_ap"] for x in rep))
                lines.append("| " + " | ".join(f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c])
                                               for c in cols) + " |")
    print("\n".join(lines))


def write(runs: list[dict], data, name: str, a: argparse.Namespace) -> None:
    """Table, curves and picture of the runs so far (rewritten after every run)."""
    os.makedirs(RESULTS_DIR, exist_ok=True)
    base = os.path.join(RESULTS_DIR, f"time-to-quality-{name}")
    command = "python benchmarks/time_to_quality.py " + " ".join(sys.argv[1:])
    load = os.getloadavg()
    meta = dict(graph=name, num_nodes=data.num_nodes, num_edges=data.graph.num_edges, seeds=a.seeds,
                overrides=a.set, command=command, loadavg_at_end=load, threads=torch.get_num_threads(),
                date=time.strftime("%Y-%m-%d %H:%M:%S"))
    with open(base + ".json", "w") as f:
        json.dump(dict(meta=meta, runs=runs), f, indent=1)
    cols = ["system", "seed", "seconds", "cpu_seconds", "steps", "evaluations", "t_q_s", "end_over_t_q",
            "end_over_t_q_cpu", "end_over_t_q_steps", "final_val_auc", "test_auc", "test_ap"]
    lines = [f"<!-- regenerate: {command} -->", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in runs:
        r2 = dict(r, t_q_s=time_to_quality(r["curve"], r["final_val_auc"]),
                  end_over_t_q_cpu=end_over_t_q(r, "cpu_seconds"), end_over_t_q_steps=end_over_t_q(r, "step"))
        lines.append("| " + " | ".join(f"{r2.get(c):.4g}" if isinstance(r2.get(c), float) else str(r2.get(c, "—"))
                                       for c in cols) + " |")
    with open(base + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines[1:]))
    title = (f"{name}: {data.num_nodes} nodes, {data.graph.num_edges} directed edges; CPU, "
             f"{torch.get_num_threads()} threads, load avg {load[0]:.1f}")
    plot(runs, title, base + ".png", a.x)
    print(f"wrote {base}.png, .md, .json")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--graph", default="cora")
    p.add_argument("--root", default=None, help="Planetoid folder")
    p.add_argument("--nodes", type=int, default=100000, help="--graph synthetic: node count")
    p.add_argument("--systems", nargs="+", default=["auto", "full", "minibatch", "pyg"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="TrainConfig overrides (ours)")
    p.add_argument("--pyg-epochs", type=int, default=400)
    p.add_argument("--pyg-eval-every", type=int, default=1)
    p.add_argument("--name", default=None, help="result file suffix (default: the graph's name)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--x", default="seconds", choices=["seconds", "cpu_seconds", "step"],
                   help="the pictures' x axis (cpu_seconds: not stretched by other jobs on a shared machine)")
    p.add_argument("--plot", default=None, metavar="JSON", help="no training: redraw the picture of a results .json")
    p.add_argument("--replay", nargs="+", default=None, metavar="JSON",
                   help="no training: replay stopping rules (--monitor-grid x --patience-grid x --min-delta-grid) on "
                        "the curves of results .json files recorded with --set patience=0")
    p.add_argument("--oracle", nargs="+", default=None, metavar="JSON",
                   help="no training: per run of these results .json files (recorded with --set patience=0), the best "
                        "test AP any stopping rule could return, and the best one within --bound x t_q")
    p.add_argument("--bound", type=float, default=1.5, help="--oracle: the end / t_q bound (issue 18: 1.5)")
    p.add_argument("--monitor-grid", nargs="+", default=["auc"], help="auc, ap, auc+ap (needs curves with val_ap)")
    p.add_argument("--patience-grid", type=_value, nargs="+", default=[0, 100, 50, 20, 10, 5, 3])
    p.add_argument("--min-delta-grid", type=float, nargs="+", default=[0.0, 0.001, 0.002])
    a = p.parse_args()
    if a.oracle:
        return oracle_table(a.oracle, a.bound)
    if a.replay:
        return replay_table(a.replay, a.patience_grid, a.min_delta_grid, a.monitor_grid)
    if a.plot:
        with open(a.plot) as f:
            blob = json.load(f)
        m = blob["meta"]
        return plot(blob["runs"], f"{m['graph']}: {m['num_nodes']} nodes, {m['num_edges']} directed edges; CPU, "
                    f"{m['threads']} threads, load avg {m['loadavg_at_end'][0]:.1f}", a.plot[:-5] + ".png", a.x)
    if a.threads:
        torch.set_num_threads(a.threads)
    overrides = {k: _value(v) for k, v in (kv.split("=", 1) for kv in a.set)}
    data = load_dataset(DatasetSpec(dataset=a.graph, root=a.root, nodes=a.nodes).resolved())
    x = data.x
    name = a.name or (f"synthetic-{a.nodes}" if a.graph == "synthetic" else os.path.basename(a.graph).split(".")[0])
    runs = []
    for seed in a.seeds:
        split = split_edges(data.graph, 0.05, 0.10, seed=seed)
        for system in a.systems:
            if system == "pyg":
                r = run_pyg(x, split, seed, epochs=a.pyg_epochs, eval_every=a.pyg_eval_every)
            else:
                r = run_ours(x, split, system, seed, overrides)
            r["end_over_t_q"] = r["seconds"] / max(time_to_quality(r["curve"], r["final_val_auc"]), 1e-9)
            print(f"{name} seed {seed} {r['system']}: {r['seconds']:.1f} s, test AUC {r['test_auc']:.4f} / AP "
                  f"{r['test_ap']:.4f}, end/t_q {r['end_over_t_q']:.2f} (CPU time: "
                  f"{end_over_t_q(r, 'cpu_seconds'):.2f}, steps: {end_over_t_q(r, 'step'):.2f})", flush=True)
            runs.append(r)
            write(runs, data, name, a)


if __name__ == "__main__":
    main()
