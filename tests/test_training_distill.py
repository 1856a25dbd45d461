"""Distillation from the full-image HR classifier into classifiers trained on masked images."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from models.training.config import TrainConfig
from models.training.stages import Context


class Fixed(nn.Module):
    """A 'network' that returns preset logits, whatever the input."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits


def loss(teacher_logits, student_logits, **cfg):
    ctx = SimpleNamespace(teacher=Fixed(teacher_logits), cfg=TrainConfig(**cfg))
    batch = SimpleNamespace(hr=torch.zeros(len(student_logits), 1, 4, 4))
    return float(Context.distill_loss(ctx, student_logits, batch))


def test_zero_when_student_agrees_with_teacher():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    assert loss(logits, logits.clone(), distill=1.0) == pytest.approx(0.0, abs=1e-6)


def test_matches_hand_computed_kl_with_temperature_scaling():
    teacher = torch.tensor([[2.0, 0.0]])
    student = torch.tensor([[0.0, 0.0]])
    t = 2.0
    p = torch.softmax(teacher / t, -1)
    kl = float((p * (p.log() - torch.log(torch.tensor([0.5, 0.5])))).sum())
    assert loss(teacher, student, distill=0.5, distill_temperature=t) == pytest.approx(0.5 * t * t * kl, rel=1e-5)


def test_off_without_weight_or_teacher():
    teacher = torch.tensor([[3.0, 0.0]])
    student = torch.tensor([[0.0, 3.0]])
    assert loss(teacher, student, distill=0.0) == 0.0
    ctx = SimpleNamespace(teacher=None, cfg=TrainConfig(distill=1.0))
    assert Context.distill_loss(ctx, student, SimpleNamespace(hr=None)) == 0.0
