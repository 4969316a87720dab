"""The CPU SIMT layer's own tests (csrc/cuda_sim/): tiny CUDA-style kernels in
tests/cuda_sim/layer_kernels.cpp, built with g++ against the layer's runtime (no torch, a few
seconds), check shuffle/vote/syncwarp/shared-memory/atomic semantics and that misuse is reported
(a lane exiting before a shuffle, an invalid launch, a race under ThreadSanitizer)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SRC = [ROOT / "tests" / "cuda_sim" / "layer_kernels.cpp", ROOT / "csrc" / "cuda_sim" / "runtime.cpp"]
CXX = os.environ.get("CXX", "g++")

pytestmark = pytest.mark.skipif(shutil.which(CXX) is None, reason=f"{CXX} not found")


def _build(out: Path, *flags: str) -> Path:
    cmd = [CXX, "-std=c++20", "-O1", "-DSVG_CUDA_SIM", f"-I{ROOT / 'csrc'}", *flags, *map(str, SRC), "-o",
           str(out), "-pthread"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out


@pytest.fixture(scope="module")
def layer_bin(tmp_path_factory) -> Path:
    return _build(tmp_path_factory.mktemp("cuda_sim") / "layer_kernels")


def _run(binary: Path, case: str, seed: int = 0, blocks: int = 1, strict: bool = True,
         env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), case, str(seed), str(blocks), str(int(strict))], capture_output=True,
                          text=True, timeout=120, env=env)


@pytest.mark.parametrize("case", ["xor_reduce", "shfl_forms", "votes", "half_masks", "shared_reverse",
                                  "atomics", "index_3d"])
@pytest.mark.parametrize("seed,blocks", [(0, 1), (7, 3)])
def test_semantics(layer_bin, case, seed, blocks):
    r = _run(layer_bin, case, seed, blocks)
    assert r.returncode == 0 and r.stdout.strip().endswith(f"OK {case}"), r.stdout + r.stderr


def _order(layer_bin, seed: int, blocks: int = 1) -> list[int]:
    r = _run(layer_bin, "order", seed, blocks)
    assert r.returncode == 0, r.stdout + r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("ORDER"))
    return [int(b) for b in line.split()[1:]]


def test_block_order_is_seeded(layer_bin):
    a, b = _order(layer_bin, 1), _order(layer_bin, 2)
    assert sorted(a) == list(range(50)) and sorted(b) == list(range(50))
    assert a == _order(layer_bin, 1)  # reproducible
    assert a != b and a != sorted(a)  # shuffled, and the seed matters


@pytest.mark.parametrize("case,message", [
    ("lane_exit", "lane 7 exited without reaching it"),
    ("lane_exit", "kernel lane_exits_before_shuffle (launched at"),  # named through LAUNCH_INTS
    ("divergent_sites", "arrives from another call site"),
    ("barrier_exit", "thread 40 exited while thread 0 waits at __syncthreads"),
    ("inactive_lane", "reads lane 20, which is not in the mask"),
    ("mask_without_self", "the mask does not include the calling lane"),
    ("block_too_large", "more than 1024 threads per block"),
    ("block_z_too_large", "block (1,1,65)"),
    ("zero_grid", "grid size 0 is outside"),
    ("grid_overflow", "grid size 4294967296 is outside"),
    ("dynamic_smem", "dynamic shared memory is not emulated"),
])
def test_misuse_is_reported(layer_bin, case, message):
    r = _run(layer_bin, case)
    assert r.returncode == 3, r.stdout + r.stderr  # a reported error, not a hang or a crash
    assert "ERROR: cuda_sim:" in r.stdout and message in r.stdout, r.stdout


def test_strict_site_check_can_be_switched_off(layer_bin):
    r = _run(layer_bin, "divergent_sites", strict=False)
    assert r.returncode == 0 and "OK divergent_sites" in r.stdout, r.stdout + r.stderr


@pytest.fixture(scope="module")
def tsan_bin(tmp_path_factory) -> Path:
    try:
        return _build(tmp_path_factory.mktemp("cuda_sim_tsan") / "layer_kernels_tsan", "-g", "-fsanitize=thread")
    except subprocess.CalledProcessError as e:  # no libtsan for this compiler
        pytest.skip(f"ThreadSanitizer build failed: {e.stderr[-500:]}")


def test_tsan_reports_a_race_between_concurrent_blocks(tsan_bin):
    env = dict(os.environ, TSAN_OPTIONS="halt_on_error=0 exitcode=66")
    racy = _run(tsan_bin, "race", blocks=4, env=env)
    assert "WARNING: ThreadSanitizer: data race" in racy.stderr and "racy_increment" in racy.stderr, racy.stderr
    assert racy.returncode == 66
    for case in ("atomics", "shared_reverse", "xor_reduce"):  # atomics, shared memory, shuffles: clean
        r = _run(tsan_bin, case, blocks=4, env=env)
        assert r.returncode == 0 and "ThreadSanitizer" not in r.stderr, r.stderr


# ---- the CUDA sampler on the emulator: warp-per-row hubs (csrc/cuda/sample.cu) ----

def _sim_ops():
    try:
        from scalevgae import _C_cuda_sim  # noqa: F401
    except ImportError as e:
        pytest.skip(f"scalevgae._C_cuda_sim not built (SCALEVGAE_CUDA_SIM=1): {e}")
    return torch.ops.scalevgae_cuda_sim


@pytest.mark.parametrize("idx", [torch.int32, torch.int64])
@pytest.mark.parametrize("fanout,replace", [(-1, False), (10, False), (33, False), (500, False), (9999, False),
                                            (20000, False), (7, True), (300, True)])
def test_cuda_sampler_hub_rows_match_reference(idx, fanout, replace):
    """A 10^4-neighbour hub (sampled by a whole warp) and light rows (a thread each) give exactly
    the reference's rows, for every sampling path (take all, Floyd, ranks, with replacement)."""
    from scalevgae.ops import reference

    sim = _sim_ops()
    g = torch.Generator().manual_seed(fanout + 7)
    n, hub = 400, 10_000
    deg = torch.randint(0, 40, (n,), generator=g)
    deg[[0, 5]] = torch.tensor([hub, 150])
    deg[3] = 0
    col = torch.cat([torch.sort(torch.randint(0, n, (int(d),), generator=g)).values for d in deg]).to(idx)
    rowptr = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(deg, 0)]).to(idx)
    nodes = torch.tensor([0, 3, 5, 0, 17, 399, 5, 200])
    got = sim.sample_adj(rowptr, col, nodes, fanout, replace, 11, 2)
    want = reference.sample_adj(rowptr, col, nodes, fanout, replace, 11, 2)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    assert int(got[0][1] - got[0][0]) == (hub if fanout < 0 or fanout >= hub else fanout)
