"""Which epoch's weights a training run keeps: the best on validation, or the last one."""

import pytest
import torch
from torch import nn

from models.training.config import TrainConfig
from models.training.loop import fit


def run(keep_best: bool, val_scores: list[float]) -> tuple[nn.Linear, dict[str, float]]:
    """A one-weight 'network' set to the epoch number at each step; validation reads the given scores."""
    net = nn.Linear(1, 1, bias=False)
    epoch = iter(range(1, len(val_scores) + 1))
    scores = iter(val_scores)

    def step(batch, progress):
        with torch.no_grad():
            net.weight.fill_(float(batch))
        return {"loss": 0.0}

    metrics = fit(
        name="net",
        epochs=len(val_scores),
        batches=lambda: [next(epoch)],
        steps_per_epoch=1,
        step=step,
        evaluate=lambda: {"acc": next(scores)},
        score_key="acc",
        keep={"net": net},
        train_modes=net.train,
        keep_best=keep_best,
    )
    return net, metrics


def test_best_epoch_weights_are_restored_by_default():
    net, metrics = run(True, [0.5, 0.9, 0.7])
    assert float(net.weight) == 2.0
    assert metrics == {"acc": 0.9, "epoch": 2}


def test_last_epoch_kept_and_reported_with_its_own_validation_score():
    # The last epoch's score, not the best one: the best of several noisy epochs overstates accuracy.
    net, metrics = run(False, [0.5, 0.9, 0.7])
    assert float(net.weight) == 3.0
    assert metrics == {"acc": 0.7, "epoch": 3}


def test_cls_keep_accepts_best_and_last_only():
    assert TrainConfig(cls_keep="last").cls_keep == "last"
    with pytest.raises(ValueError, match="cls_keep"):
        TrainConfig(cls_keep="median")
