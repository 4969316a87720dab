import numpy as np
import pytest
import torch

from scalevgae.metrics import average_precision, hits_at_k, link_scores, mrr, roc_auc

sklearn_metrics = pytest.importorskip("sklearn.metrics")


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("levels", [None, 3, 20])
def test_auc_ap_match_sklearn_with_ties(seed, levels):
    g = torch.Generator().manual_seed(seed)
    n = int(torch.randint(5, 400, (1,), generator=g))
    y = (torch.rand(n, generator=g) < 0.3 + 0.4 * torch.rand(1, generator=g)).long()
    y[0], y[1] = 0, 1
    s = torch.randn(n, generator=g)
    if levels is not None:  # heavy ties
        s = torch.randint(0, levels, (n,), generator=g).float() / levels
    auc, ap = roc_auc(y, s), average_precision(y, s)
    assert abs(auc - sklearn_metrics.roc_auc_score(y.numpy(), s.numpy())) < 1e-6
    assert abs(ap - sklearn_metrics.average_precision_score(y.numpy(), s.numpy())) < 1e-6


def test_link_scores_and_dtypes():
    pos = torch.tensor([0.9, 0.8, 0.5], dtype=torch.float16)
    neg = torch.tensor([0.1, 0.5, 0.95], dtype=torch.float16)
    auc, ap = link_scores(pos, neg)
    y = np.r_[np.ones(3), np.zeros(3)]
    s = np.r_[pos.float().numpy(), neg.float().numpy()]
    assert abs(auc - sklearn_metrics.roc_auc_score(y, s)) < 1e-6
    assert abs(ap - sklearn_metrics.average_precision_score(y, s)) < 1e-6


def test_metric_errors():
    with pytest.raises(ValueError, match="both"):
        roc_auc(torch.ones(4), torch.rand(4))
    with pytest.raises(ValueError, match="positive"):
        average_precision(torch.zeros(4), torch.rand(4))
    with pytest.raises(ValueError, match="0 and 1"):
        roc_auc(torch.tensor([0, 2]), torch.rand(2))
    with pytest.raises(ValueError, match="1-D"):
        roc_auc(torch.tensor([0, 1]), torch.rand(3))


def test_hits_at_k_ogb():
    g = torch.Generator().manual_seed(0)
    pos, neg = torch.randn(50, generator=g), torch.randn(200, generator=g)
    for k in (1, 10, 50):
        kth = neg.sort(descending=True).values[k - 1]
        assert hits_at_k(pos, neg, k) == pytest.approx(float((pos > kth).float().mean()))
    assert hits_at_k(pos, neg[:3], 10) == 1.0
    per = torch.randn(50, 20, generator=g)
    kth = per.sort(1, descending=True).values[:, 4]
    assert hits_at_k(pos, per, 5) == pytest.approx(float((pos > kth).float().mean()))


def test_mrr_ogb_ties():
    pos = torch.tensor([1.0, 0.0, 0.5])
    neg = torch.tensor([[0.0, 0.2], [1.0, 2.0], [0.5, 0.1]])
    # ranks: 1; 3; tie with one negative -> 1.5
    assert mrr(pos, neg) == pytest.approx((1 + 1 / 3 + 1 / 1.5) / 3)
    with pytest.raises(ValueError):
        mrr(pos, neg[:2])
