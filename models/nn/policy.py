"""Patch-sampling actions: the agent's (sampled, greedy, top-k) and the paper's baselines."""

from __future__ import annotations

import math

import torch

from models.errors import BudgetError, GridError
from models.geo.patch_grid import PatchGrid

# Section 5.2 of the paper. Its Fixed-H list names 15 ids and omits 12: appended last.
FIXED_H_ORDER: tuple[int, ...] = (5, 6, 9, 10, 13, 14, 1, 2, 0, 3, 4, 7, 8, 11, 15, 12)
FIXED_V_ORDER: tuple[int, ...] = (4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3)
BASELINES = ("fixed-h", "fixed-v", "stochastic", "random")
# What each baseline buys first with our row-major ids (id = row * 4 + col). The paper's
# "Fixed-H" list, read row-major, buys the two middle *columns* (a vertical band) before
# the rest, and its "Fixed-V" list buys whole *rows* 1-3 first: the names are the paper's.
BASELINE_BUYS = {
    "fixed-h": "the paper's Fixed-H list 5,6,9,10,13,14,1,2,0,3,4,7,8,11,15 (+12), which with row-major ids "
    "buys the two middle columns (rows 1, 2, 3, then 0) before the outer columns",
    "fixed-v": "the paper's Fixed-V list 4..15 then 0..3, which with row-major ids buys whole rows 1, 2, 3, then 0",
    "stochastic": "k patches drawn without replacement, probability decaying with the distance to the centre",
    "random": "k patches drawn uniformly without replacement",
}


def explore(probs: torch.Tensor, alpha: float) -> torch.Tensor:
    """Exploration bound s <- a*s + (1-a)*(1-s): keeps every probability in [1-a, a]."""
    if not 0.5 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0.5, 1], got {alpha}")
    return alpha * probs + (1.0 - alpha) * (1.0 - probs)


def alpha_at(progress: float, start: float = 0.7, end: float = 0.95) -> float:
    """Linear alpha schedule over training progress in [0, 1]."""
    progress = min(max(progress, 0.0), 1.0)
    return start + (end - start) * progress


def sample_actions(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    return torch.bernoulli(probs, generator=generator)


def greedy_actions(probs: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Most likely action vector: patch p is bought when s_p >= threshold."""
    return (probs >= threshold).to(probs.dtype)


def budgeted_greedy_actions(probs: torch.Tensor, max_patches: int | None) -> torch.Tensor:
    """Greedy actions, keeping only the ``max_patches`` most probable ones when over the cap."""
    greedy = greedy_actions(probs)
    if max_patches is None:
        return greedy
    return greedy * topk_actions(probs, max_patches)


def action_log_prob(probs: torch.Tensor, actions: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Sum over patches of the Bernoulli log-likelihood: (B, P) -> (B,)."""
    probs = probs.clamp(eps, 1.0 - eps)
    return (actions * probs.log() + (1.0 - actions) * (1.0 - probs).log()).sum(dim=-1)


def _paper_grid_only(grid: PatchGrid, name: str) -> None:
    if (grid.rows, grid.cols) != (4, 4):
        raise GridError(f"{name} is defined by the paper for the 4x4 grid only, got {grid.rows}x{grid.cols}")


def fixed_order(name: str, grid: PatchGrid) -> tuple[int, ...]:
    _paper_grid_only(grid, name)
    return {"fixed-h": FIXED_H_ORDER, "fixed-v": FIXED_V_ORDER}[name]


def first_k(scores: torch.Tensor, k: int | torch.Tensor) -> torch.Tensor:
    """Actions buying the k highest-scoring patches of each row; k may differ per row.

    Equal scores are ranked by patch id (stable sort), so results are reproducible.
    """
    num_patches = scores.shape[-1]
    k_t = torch.as_tensor(k, device=scores.device)
    if (k_t < 0).any() or (k_t > num_patches).any():
        raise BudgetError(f"budget k must lie in 0..{num_patches}, got {k}")
    order = torch.sort(-scores, dim=-1, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(-1, order, torch.arange(num_patches, device=scores.device).expand_as(order))
    k_col = k_t.reshape(-1, 1) if k_t.dim() else k_t
    return (ranks < k_col).to(scores.dtype)


def topk_actions(probs: torch.Tensor, k: int | torch.Tensor) -> torch.Tensor:
    """Exactly the k most probable patches (ties broken by the lower patch id)."""
    return first_k(probs, k)


def centre_weights(grid: PatchGrid, scale: float | None = None) -> torch.Tensor:
    """Survival weights decaying with the distance of each patch centre to the image centre."""
    rows = torch.arange(grid.rows, dtype=torch.float32) + 0.5 - grid.rows / 2
    cols = torch.arange(grid.cols, dtype=torch.float32) + 0.5 - grid.cols / 2
    dist = torch.sqrt(rows[:, None] ** 2 + cols[None, :] ** 2).reshape(-1)
    scale = scale if scale is not None else max(grid.rows, grid.cols) / 4
    return torch.exp(-dist / scale)


def baseline_scores(name: str, grid: PatchGrid, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, P) priorities of a named baseline: its first k patches are the k highest scores.

    Stochastic and Random use the Gumbel-top-k trick, which draws k patches without
    replacement with probability proportional to the weights.
    """
    if name in ("fixed-h", "fixed-v"):
        order = fixed_order(name, grid)
        scores = torch.empty(grid.num_patches)
        scores[list(order)] = torch.arange(grid.num_patches, 0, -1, dtype=torch.float32)
        return scores.expand(batch, -1).clone()
    if name in ("stochastic", "random"):
        weights = centre_weights(grid) if name == "stochastic" else torch.ones(grid.num_patches)
        uniform = torch.rand(batch, grid.num_patches, generator=generator).clamp_min(1e-12)
        return weights.log() - torch.log(-torch.log(uniform))
    raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")


def baseline_actions(
    name: str,
    grid: PatchGrid,
    k: int | torch.Tensor,
    batch: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Actions of a named baseline at a budget of k patches per image."""
    return first_k(baseline_scores(name, grid, batch, generator), k)


def fractional_k(mean_patches: float, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-image budgets whose mean is ``mean_patches``: floor or ceil, mixed in proportion."""
    low = math.floor(mean_patches)
    extra = torch.rand(batch, generator=generator) < (mean_patches - low)
    return low + extra.long()
