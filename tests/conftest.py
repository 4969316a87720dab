"""The slow tier: tests marked ``slow`` here, in one list, besides those decorated in place.

``bash scripts/test.sh -m "not slow"`` is the fast tier; CI runs everything. A test joins the list
when it alone costs seconds of CPU (measured with ``--durations``); entries are ``file::test``
(every parametrization of the test). An entry that names no test of a collected file is an
error, so the list cannot silently go stale when a test is renamed.
"""

from __future__ import annotations

import os

import pytest

# file::test -> why it is slow (CPU seconds, all parametrizations together, measured on the 2-core
# development machine while it was shared; alone it is faster). With these, the fast tier took 211
# CPU seconds of tests there (448 before), plus collection.
SLOW = {
    "test_distributed_train.py::test_two_ranks_partition_pairs_and_average_gradients": "2 gloo ranks, 31 s",
    "test_distributed_train.py::test_two_rank_checkpoint_resumes_on_one_rank": "2 gloo ranks, 28 s",
    "test_distributed_train.py::test_cli_under_torchrun_full_mode": "torchrun subprocess, 19 s",
    "test_distributed.py::test_shutdown_frees_gloo_threads_after_ddp": "2 gloo ranks, 14 s",
    "test_distributed.py::test_two_gloo_ranks_see_every_pair_exactly_once": "2 gloo ranks, 9 s",
    "test_loader_aggregate.py::test_loader_batches_give_same_outputs_and_grads": "8 models, 18 s",
    "test_propagate_triton.py::test_split_path_small_tunables": "Triton interpreter, 17 s",
    "test_all_pairs_triton.py::test_larger_n": "Triton interpreter, 14 s",
    "test_decode.py::test_opcheck": "opcheck of every decode op, 12 s",
    "test_train.py::test_resume_equals_uninterrupted": "4 interrupted + resumed trainings, 25 s",
    "test_train.py::test_full_mode_learns_and_restores_best": "2 x 40 epochs, 11 s",
    "test_triton_aot.py::test_kernels_compile_for_sm90": "Triton AOT compile, 14 s",
    "test_propagate_triton.py::test_self_scale": "Triton interpreter, 9 s",
    "test_propagate_triton.py::test_self_scale_gradcheck_and_opcheck": "Triton interpreter, 8 s",
    "test_propagate_triton.py::test_gradcheck_float64": "Triton interpreter, 7 s",
    "test_scale.py::test_train_3e6_nodes_in_bounded_memory": "3e6-node CLI run, 115 s CPU",
    "test_distributed.py::test_shared_on_host_builds_once_and_maps_the_result": "2 gloo ranks, 24 s CPU",
}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    modules = {}
    for item in items:
        fname = os.path.basename(str(item.path))
        modules[fname] = getattr(item, "module", None)
        if f"{fname}::{getattr(item, 'originalname', item.name)}" in SLOW:
            item.add_marker(pytest.mark.slow)
    stale = [k for k in SLOW if k.split("::")[0] in modules and not hasattr(modules[k.split("::")[0]], k.split("::")[1])]
    if stale:
        raise pytest.UsageError(f"tests/conftest.py SLOW names tests that do not exist: {stale}")
