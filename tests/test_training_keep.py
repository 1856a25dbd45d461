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


@pytest.mark.parametrize("cls_keep, keep_best", [("best", True), ("last", False)])
def test_pretrained_classifiers_keep_the_epoch_the_config_names(monkeypatch, cls_keep, keep_best):
    from types import SimpleNamespace

    from models.training import stages

    seen = []

    def fake_train(ctx, net, name, *args, keep_best=True, **kwargs):
        seen.append((name, keep_best))
        return {}

    monkeypatch.setattr(stages, "train_classifier", fake_train)
    bundle = SimpleNamespace(hr_classifier=nn.Linear(1, 1), lr_classifier=nn.Linear(1, 1))
    ctx = SimpleNamespace(cfg=TrainConfig(cls_keep=cls_keep), bundle=bundle, lr_input=lambda b: b.lr)
    stages.pretrain_classifiers(ctx)
    assert seen == [("hr_classifier", keep_best), ("lr_classifier", keep_best)]
    ctx.teacher = nn.Linear(1, 1)  # the LR classifier with KD keeps the same epoch as the plain one
    stages.train_lr_kd(ctx)
    assert seen[-1] == ("lr_kd", keep_best)


def test_no_epochs_reports_nothing_either_way():
    for keep_best in (True, False):
        net, metrics = run(keep_best, [])
        assert metrics == {}
