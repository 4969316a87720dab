"""EpochOrder: the lazily evaluated permutation of an epoch's positive pairs."""

import pytest
import torch

from scalevgae.loader.order import EpochOrder, mix64


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 8, 9, 63, 64, 65, 1000, 4097, 100_003])
@pytest.mark.parametrize("seed", [None, 0, 12345])
def test_is_a_permutation_and_slices_agree(n, seed):
    order = EpochOrder(n, seed)
    full = order[0:n]
    assert full.dtype == torch.int32 and len(order) == n
    assert torch.equal(full.sort().values.long(), torch.arange(n))
    chunks = [order[a : a + 7] for a in range(0, n, 7)]
    assert torch.equal(torch.cat([torch.empty(0, dtype=torch.int32)] + chunks), full)
    assert torch.equal(order[max(n - 3, 0) : n + 10], full[max(n - 3, 0) :])  # clamped like a tensor's
    assert order[n : n + 5].numel() == 0
    if seed is None:
        assert torch.equal(full.long(), torch.arange(n))


def test_depends_on_seed_and_looks_shuffled():
    n = 100_000
    a = EpochOrder(n, mix64(7, 0))[0:n]
    assert torch.equal(a, EpochOrder(n, mix64(7, 0))[0:n])
    assert not torch.equal(a, EpochOrder(n, mix64(7, 1))[0:n])
    assert not torch.equal(a, EpochOrder(n, mix64(8, 0))[0:n])
    pos, val = torch.arange(n, dtype=torch.float64), a.double()
    # No trace of the position in the value, nor of one value in the next (|r| ~ 1/sqrt(n) = 0.003).
    assert abs(torch.corrcoef(torch.stack([pos, val]))[0, 1]) < 0.02
    assert abs(torch.corrcoef(torch.stack([val[:-1], val[1:]]))[0, 1]) < 0.02
    # A batch of 4096 consecutive positions spreads over the whole range: every tenth of it holds
    # about a tenth of the batch.
    counts = torch.bincount((a[:4096].long() * 10) // n, minlength=10)
    assert counts.min() > 300 and counts.max() < 520


def test_int64_beyond_int32_without_materialising():
    n = 2**31 + 5
    s = EpochOrder(n, seed=3)[n - 1000 : n]
    assert s.dtype == torch.int64 and s.unique().numel() == 1000
    assert int(s.min()) >= 0 and int(s.max()) < n


def test_rejects_what_it_cannot_do():
    with pytest.raises(ValueError, match="n must be"):
        EpochOrder(-1, 0)
    with pytest.raises(TypeError, match="contiguous slices"):
        EpochOrder(10, 0)[::2]
    with pytest.raises(TypeError, match="contiguous slices"):
        EpochOrder(10, 0)[3]
