import pytest
import torch

from models.errors import BudgetError, GridError
from models.geo.patch_grid import PatchGrid
from models.nn.policy import (
    FIXED_H_ORDER,
    FIXED_V_ORDER,
    action_log_prob,
    alpha_at,
    baseline_actions,
    budgeted_greedy_actions,
    centre_weights,
    explore,
    fractional_k,
    greedy_actions,
    sample_actions,
    topk_actions,
)


def test_exploration_bound_keeps_probabilities_within_alpha():
    s = torch.tensor([0.0, 0.25, 0.5, 1.0])
    out = explore(s, 0.8)
    assert torch.allclose(out, torch.tensor([0.2, 0.35, 0.5, 0.8]))
    assert explore(torch.rand(1000), 0.7).min() >= 0.3 - 1e-6
    with pytest.raises(ValueError):
        explore(s, 0.3)


def test_alpha_schedule_is_linear_from_07_to_095():
    assert alpha_at(0.0) == pytest.approx(0.7)
    assert alpha_at(0.5) == pytest.approx(0.825)
    assert alpha_at(1.0) == pytest.approx(0.95)
    assert alpha_at(2.0) == pytest.approx(0.95)


def test_greedy_threshold_and_sampling_frequency():
    probs = torch.tensor([[0.49, 0.5, 0.51, 0.9]])
    assert greedy_actions(probs).tolist() == [[0, 1, 1, 1]]
    g = torch.Generator().manual_seed(0)
    p = torch.full((20000, 2), 0.3)
    p[:, 1] = 0.8
    freq = sample_actions(p, g).mean(0)
    assert freq[0] == pytest.approx(0.3, abs=0.02)
    assert freq[1] == pytest.approx(0.8, abs=0.02)


def test_topk_selects_most_probable_and_breaks_ties_by_id():
    probs = torch.tensor([[0.1, 0.9, 0.5, 0.5, 0.7]])
    assert topk_actions(probs, 3).tolist() == [[0, 1, 1, 0, 1]]
    assert topk_actions(probs, 0).sum() == 0
    with pytest.raises(BudgetError):
        topk_actions(probs, 6)


def test_budgeted_greedy_caps_but_never_adds_patches():
    probs = torch.tensor([[0.9, 0.8, 0.7, 0.2]])
    assert budgeted_greedy_actions(probs, 2).tolist() == [[1, 1, 0, 0]]
    assert budgeted_greedy_actions(probs, 4).tolist() == [[1, 1, 1, 0]]
    assert budgeted_greedy_actions(probs, None).tolist() == [[1, 1, 1, 0]]


def test_log_prob_matches_bernoulli():
    probs = torch.tensor([[0.2, 0.7]])
    actions = torch.tensor([[1.0, 0.0]])
    expected = torch.log(torch.tensor(0.2)) + torch.log(torch.tensor(0.3))
    assert action_log_prob(probs, actions).item() == pytest.approx(expected.item(), rel=1e-5)


def test_paper_baseline_orders():
    assert FIXED_H_ORDER[:6] == (5, 6, 9, 10, 13, 14)
    assert sorted(FIXED_H_ORDER) == list(range(16)) and FIXED_H_ORDER[-1] == 12
    assert FIXED_V_ORDER == tuple(range(4, 16)) + (0, 1, 2, 3)
    grid = PatchGrid()
    h = baseline_actions("fixed-h", grid, 4, batch=3)
    assert h.shape == (3, 16) and h[0].nonzero().flatten().tolist() == [5, 6, 9, 10]
    v = baseline_actions("fixed-v", grid, 6, batch=1)
    assert v[0].nonzero().flatten().tolist() == [4, 5, 6, 7, 8, 9]
    with pytest.raises(GridError):
        baseline_actions("fixed-h", PatchGrid(3, 3), 2, batch=1)


def test_stochastic_baseline_prefers_the_centre_and_samples_exactly_k():
    grid = PatchGrid()
    w = centre_weights(grid)
    assert w[5] == w[10] > w[1] > w[0]
    g = torch.Generator().manual_seed(1)
    a = baseline_actions("stochastic", grid, 4, batch=5000, generator=g)
    assert (a.sum(1) == 4).all()
    freq = a.mean(0)
    assert freq[[5, 6, 9, 10]].min() > freq[[0, 3, 12, 15]].max()
    r = baseline_actions("random", grid, 4, batch=5000, generator=g).mean(0)
    assert r.min() > 0.2 and r.max() < 0.3


def test_fractional_budget_has_requested_mean():
    k = fractional_k(5.3, 20000, torch.Generator().manual_seed(0))
    assert set(k.unique().tolist()) == {5, 6}
    assert k.float().mean().item() == pytest.approx(5.3, abs=0.02)
