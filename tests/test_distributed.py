"""Pair sharding and process-group set-up for data-parallel training (CPU, gloo)."""

import os
import socket
import subprocess
import sys
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from dist_support import gloo_threads

from scalevgae import distributed as sd
from scalevgae.loader.order import EpochOrder


def test_single_process_info():
    info = sd.init_distributed(device="cpu")
    assert not info.enabled and info.is_main and info.device.type == "cpu"


@pytest.mark.parametrize("num_pairs,batch,world", [(100, 8, 2), (101, 8, 3), (5, 8, 4), (64, 16, 2), (0, 4, 2)])
@pytest.mark.parametrize("start", [0, 3])
def test_shards_cover_every_pair_once(num_pairs, batch, world, start):
    order = EpochOrder(num_pairs, seed=3)
    start = min(start, num_pairs)
    steps = sd.num_steps(num_pairs - start, batch, world)
    seen = torch.cat([torch.empty(0, dtype=torch.int32)] + [
        sd.rank_batch(order, s, batch, r, world, start=start) for s in range(steps) for r in range(world)
    ])
    assert torch.equal(seen.sort().values, order[start:num_pairs].sort().values)
    assert torch.equal(torch.cat([order[0:start], seen]).sort().values.long(), torch.arange(num_pairs))
    for s in range(steps):
        sizes = [sd.rank_batch(order, s, batch, r, world, start=start).numel() for r in range(world)]
        assert max(sizes) - min(sizes) <= 1 and max(sizes) <= batch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    info = sd.init_distributed(device="cpu")
    assert info.enabled and info.rank == rank and dist.get_backend() == "gloo"
    num_pairs, batch = 37, 5
    order = EpochOrder(num_pairs, seed=11)
    mine = torch.cat([sd.rank_batch(order, s, batch, rank, world) for s in range(sd.num_steps(num_pairs, batch, world))])
    gathered = [None] * world
    dist.all_gather_object(gathered, mine.tolist())
    if rank == 0:
        torch.save([torch.tensor(g, dtype=torch.long) for g in gathered], out)
    assert sd.all_reduce_mean(float(rank), info) == pytest.approx((world - 1) / 2)
    sd.shutdown_distributed()
    assert not dist.is_initialized() and not gloo_threads()
    sd.shutdown_distributed()  # a no-op without a group


def test_two_gloo_ranks_see_every_pair_exactly_once(tmp_path):
    out = str(tmp_path / "seen.pt")
    mp.spawn(_worker, args=(2, _free_port(), out), nprocs=2, join=True)
    parts = torch.load(out)
    assert len(parts) == 2
    assert torch.equal(torch.cat(parts).sort().values, torch.arange(37))


# A fresh interpreter: DDP's first construction imports torch.distributed.nn.functional there
# (unless scalevgae.distributed did so before the group existed), as under torchrun.
_DDP_TEARDOWN = """
import os, sys, weakref
import scalevgae.distributed as sd
import torch, torch.distributed as dist
sys.path.insert(0, {tests!r})
from dist_support import gloo_threads
dist.init_process_group("gloo", init_method="file://" + {store!r}, rank=0, world_size=1)
ddp = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(3, 1))
ddp(torch.ones(2, 3)).sum().backward()
{drop}
sd.shutdown_distributed()
print("left:", gloo_threads())
"""


@pytest.mark.parametrize("drop", ["del ddp", "cycle = [ddp]; cycle.append(cycle); del ddp, cycle"])
def test_shutdown_frees_gloo_threads_after_ddp(tmp_path, drop):
    """destroy_process_group must free gloo's worker threads: threads that outlive the group can
    abort the process at interpreter exit ("terminate called without an active exception")."""
    code = _DDP_TEARDOWN.format(tests=os.path.dirname(os.path.abspath(__file__)), store=str(tmp_path / "store"),
                                drop=drop)
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "left: []" in proc.stdout, proc.stdout + proc.stderr[-2000:]



def _shared_worker(rank: int, world: int, port: int, tmp: str) -> None:
    import numpy as np

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank), TORCHELASTIC_RUN_ID=f"test-{port}")
    info = sd.init_distributed(device="cpu")
    np.save(os.path.join(tmp, f"x{rank}.npy"), np.arange(12, dtype=np.float32).reshape(4, 3))

    def build():
        with open(os.path.join(tmp, f"built-by-{rank}"), "w"):
            pass
        x = np.load(os.path.join(tmp, f"x{rank}.npy"), mmap_mode="r")
        t = torch.arange(10, dtype=torch.int32)
        return {"t": t, "view": t[2:5], "x": x}

    def fail():
        raise ValueError(f"bad dataset (rank {rank})")

    got = sd.shared_on_host(info, build)
    with open("/proc/self/maps") as f:
        maps = f.read()
    res = {"t": got["t"].tolist(), "view": got["view"].tolist(), "x": np.asarray(got["x"]).tolist(),
           # the file may or may not be deleted yet here (the builder removes it after the barrier)
           "mapped": f"scalevgae-shared-{os.getuid()}-test-{port}.pt" in maps,
           "same_storage": got["view"].untyped_storage().data_ptr() == got["t"].untyped_storage().data_ptr(),
           "x_is_memmap": isinstance(got["x"], np.memmap), "x_file": os.path.basename(got["x"].filename)}
    try:
        sd.shared_on_host(info, fail)
    except ValueError as e:
        res["error"] = str(e)
    torch.save(res, os.path.join(tmp, f"res{rank}.pt"))
    sd.shutdown_distributed()


def test_shared_on_host_builds_once_and_maps_the_result(tmp_path):
    """Under torchrun the local rank 0 builds; every rank maps the same file (tensors by mmap, a numpy
    memmap by its own file name, shared views kept), deleted once mapped; a failed build raises the
    same error on every rank (each then builds for itself)."""
    port = _free_port()
    mp.spawn(_shared_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    shared = os.path.join(tempfile.gettempdir(), f"scalevgae-shared-{os.getuid()}-test-{port}.pt")
    assert not os.path.exists(shared) and not os.path.exists(shared + ".part")  # deleted once mapped
    res = [torch.load(tmp_path / f"res{r}.pt") for r in range(2)]
    assert sorted(p.name for p in tmp_path.glob("built-by-*")) == ["built-by-0"]
    for rank, r in enumerate(res):
        assert r["t"] == list(range(10)) and r["view"] == [2, 3, 4] and r["x"][3] == [9.0, 10.0, 11.0]
        assert r["mapped"] and r["same_storage"] and r["x_is_memmap"] and r["x_file"] == "x0.npy", r
        assert r["error"] == f"bad dataset (rank {rank})"
