"""Reward, self-critical advantage and the two-stream score of the paper (Eq. 7, Sec. 5.1)."""

from __future__ import annotations

import torch


def reward(correct: torch.Tensor, actions: torch.Tensor, sigma: float) -> torch.Tensor:
    """R = 1 - (S/P)^2 when the prediction is correct, -sigma otherwise. (B,) float.

    ``sigma`` is the penalty magnitude (> 0); larger values make the agent buy more patches.
    """
    sampled_fraction = actions.sum(dim=-1) / actions.shape[-1]
    return torch.where(correct.bool(), 1.0 - sampled_fraction**2, torch.full_like(sampled_fraction, -sigma))


def self_critical_advantage(sampled_reward: torch.Tensor, greedy_reward: torch.Tensor) -> torch.Tensor:
    """Advantage of the sampled actions over the greedy (s >= 0.5) actions' reward."""
    return sampled_reward - greedy_reward


def two_stream_probs(hr_logits: torch.Tensor, lr_logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """s_cl = (S/P) s_hr + (1 - S/P) s_lr on class probabilities, S counted per image."""
    weight = (actions.sum(dim=-1, keepdim=True) / actions.shape[-1]).to(hr_logits.dtype)
    return weight * hr_logits.softmax(-1) + (1.0 - weight) * lr_logits.softmax(-1)


def confidence_fusion_probs(hr_logits: torch.Tensor, lr_logits: torch.Tensor) -> torch.Tensor:
    """Weight each stream by its own confidence (max class probability), per image.

    An alternative to the paper's S/P weighting for the case where a few
    well-chosen HR patches already carry the decision.
    """
    hr, lr = hr_logits.softmax(-1), lr_logits.softmax(-1)
    c_hr, c_lr = hr.max(-1, keepdim=True).values, lr.max(-1, keepdim=True).values
    weight = c_hr / (c_hr + c_lr)
    return weight * hr + (1.0 - weight) * lr
