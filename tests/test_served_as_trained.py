"""A bundle is served with exactly the rule and settings it was trained and evaluated with.

Tiny bundles are trained per fusion rule (and fill mode) through the real stages on
random 4-band images; the served probabilities (``models.nn.inference.classify``, which
the worker calls) must equal the training-time evaluation's on the same inputs.
"""

from __future__ import annotations

import pytest
import torch

from models.datasets.base import ImageSet, Splits
from models.errors import CheckpointError
from models.nn import inference
from models.nn.checkpoint import build_bundle, load_bundle, save_bundle
from models.nn.fusion import FUSIONS, bundle_probs, fusion_of
from models.nn.grid import downsample
from models.nn.policy import first_k, greedy_actions
from models.training import evaluate as ev
from models.training import stages
from models.training.batches import Normaliser, iterate
from models.training.config import TrainConfig

BANDS = ["B02", "B03", "B04", "B08"]
CLASSES = ["a", "b", "c"]


def image_set(n: int, seed: int) -> ImageSet:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, len(CLASSES), (n,), generator=g)
    hr = 500 + 300 * torch.rand(n, len(BANDS), 32, 32, generator=g)
    for i, y in enumerate(labels):  # a bright square whose position encodes the class
        hr[i, :, 8 * int(y) : 8 * int(y) + 8, 4:12] += 400
    return ImageSet(hr, labels, CLASSES, BANDS, lr_factor=4)


@pytest.fixture(scope="module")
def splits() -> Splits:
    return Splits(image_set(48, 0), image_set(16, 1), image_set(16, 2))


def tiny_cfg(**overrides) -> TrainConfig:
    values = dict(
        cls_epochs=1, lr_cls_epochs=1, pt_epochs=1, ft1_epochs=1, ft2_epochs=1, cls_batch=16, pt_batch=16,
        ft_batch=16, eval_batch=16, policy_width=4, classifier_width=4, budget_mix=0.5, budget_k_min=0,
        budget_masks="both", select="budgets",
    )  # fmt: skip
    values.update(overrides)
    return TrainConfig(**values)


def train_tiny(splits: Splits, cfg: TrainConfig, stage: str, tmp_path):
    """Classifiers, then each agent stage up to ``stage``, as ``models.train`` runs them."""
    torch.manual_seed(cfg.seed)
    mean, std = splits.train.band_statistics()
    bundle = build_bundle(
        class_names=CLASSES, bands=BANDS, band_mean=mean, band_std=std, hr_size=(32, 32), lr_size=(8, 8),
        policy_width=cfg.policy_width, classifier_width=cfg.classifier_width, fill=cfg.fill,
    )  # fmt: skip
    ctx = stages.Context(bundle, splits, cfg, torch.device("cpu"))
    stages.pretrain_classifiers(ctx)
    for s in ("pt", "ft1", "ft2")[: ("pt", "ft1", "ft2").index(stage) + 1]:
        bundle.metadata["fusion"] = stages.stage_fusion(cfg, s)
        stages.train_agent(ctx, s)
    path = save_bundle(bundle, tmp_path / f"{stage}.pt")
    return ctx, load_bundle(path)


CASES = [
    ("ft1", "paper", "lr"),  # Ft-1 trains and is served HR-only whatever cfg.fusion says
    ("ft2", "paper", "lr"),
    ("ft2", "confidence", "lr"),
    ("ft2", "paper", "zeros"),
]


@pytest.mark.parametrize(("stage", "fusion", "fill"), CASES)
def test_served_probabilities_equal_the_training_time_evaluation(splits, tmp_path, stage, fusion, fill):
    cfg = tiny_cfg(fusion=fusion, fill=fill)
    ctx, served = train_tiny(splits, cfg, stage, tmp_path)
    expected_rule = stages.stage_fusion(cfg, stage)
    assert fusion_of(served) == expected_rule == ("hr-only" if stage == "ft1" else fusion)
    test = splits.test
    norm = Normaliser(served.metadata["band_mean"], served.metadata["band_std"], torch.device("cpu"))
    batch = next(iterate(test, len(test), norm, torch.device("cpu")))
    scores = torch.sigmoid(ctx.bundle.eval().policy(batch.lr))
    # Raw band values as a client would send them: LR area-averaged from HR, HR of every pixel.
    raw_lr = downsample(test.hr.float(), 4)
    for actions in (greedy_actions(scores), first_k(scores, 0), first_k(scores, 5), first_k(scores, 16)):
        trained = bundle_probs(ctx.bundle, batch.hr, batch.lr, actions, rule=expected_rule)
        ids = [[int(i) for i in torch.nonzero(row).flatten()] for row in actions]
        out = inference.classify(served, raw_lr.numpy(), test.hr.numpy(), ids)
        got = torch.tensor([[c.probabilities[n] for n in CLASSES] for c in out])
        torch.testing.assert_close(got, trained, atol=1e-5, rtol=1e-4)
    # The stage's own validation figure is computed with the same rule.
    metrics = stages.evaluate_agent(ctx, stage, test, sigma=1.0)
    greedy = greedy_actions(scores)
    own = bundle_probs(served, batch.hr, batch.lr, greedy).argmax(-1) == batch.labels
    assert metrics["acc"] == pytest.approx(float(own.float().mean()))
    # And the offline test report scores the stage the same way.
    report = ev.evaluate(ev.Models(classifiers=served, stages={"Ft-2" if stage == "ft2" else "Ft-1": served}), test)
    name = "Ft-2" if stage == "ft2" else "Ft-1"
    assert report["methods"][name]["accuracy"] == pytest.approx(round(100 * float(own.float().mean()), 2))


def test_zero_budget_of_the_paper_rule_is_the_lr_classifier(splits, tmp_path):
    ctx, served = train_tiny(splits, tiny_cfg(fusion="paper"), "ft2", tmp_path)
    test = splits.test
    out = inference.classify(served, downsample(test.hr.float(), 4).numpy(), test.hr.numpy(), [[]] * len(test))
    lr = inference.decide_patches(served, downsample(test.hr.float(), 4).numpy())
    for c, d in zip(out, lr, strict=True):
        assert c.probabilities == pytest.approx(d.lr_probabilities, abs=1e-6)


def test_unknown_fusion_rule_is_refused_not_guessed(splits, tmp_path):
    _, served = train_tiny(splits, tiny_cfg(), "ft1", tmp_path)
    served.metadata["fusion"] = "mystery"
    test = splits.test
    with pytest.raises(CheckpointError, match="unknown fusion rule"):
        inference.classify(served, downsample(test.hr[:1].float(), 4).numpy(), test.hr[:1].numpy(), [[0]])
    assert set(FUSIONS) == {"hr-only", "paper", "confidence"}


def bn_updates(net: torch.nn.Module) -> int:
    return max(int(m.num_batches_tracked) for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))


@pytest.mark.parametrize("stage", ["ft1", "ft2"])
def test_finetuning_updates_batch_norm_statistics_once_per_step(splits, stage):
    """The greedy baseline's forward runs on running statistics and leaves them alone; the sampled and
    budget masks share one forward, so every step moves the running statistics once."""
    cfg = tiny_cfg(ft1_epochs=1, ft2_epochs=1, budget_mix=0.5)
    mean, std = splits.train.band_statistics()
    bundle = build_bundle(
        class_names=CLASSES, bands=BANDS, band_mean=mean, band_std=std, hr_size=(32, 32), lr_size=(8, 8),
        policy_width=4, classifier_width=4,
    )  # fmt: skip
    ctx = stages.Context(bundle, splits, cfg, torch.device("cpu"))
    before = bn_updates(bundle.hr_classifier)
    stages.train_agent(ctx, stage)
    steps = -(-len(splits.train) // cfg.ft_batch)
    assert bn_updates(bundle.hr_classifier) - before == steps


def test_budget_masks_cover_every_budget_from_none_to_all(splits):
    cfg = tiny_cfg(budget_masks="random", budget_k_min=0)
    mean, std = splits.train.band_statistics()
    bundle = build_bundle(class_names=CLASSES, bands=BANDS, band_mean=mean, band_std=std, hr_size=(32, 32),
                          lr_size=(8, 8), policy_width=4, classifier_width=4)  # fmt: skip
    ctx = stages.Context(bundle, splits, cfg, torch.device("cpu"))
    actions = stages.budget_actions(ctx, torch.rand(4000, 16))
    assert set(actions.sum(-1).int().tolist()) == set(range(17))
    ctx.cfg = tiny_cfg(budget_masks="policy", budget_k_min=1)
    probs = torch.rand(500, 16)
    actions = stages.budget_actions(ctx, probs)
    k = actions.sum(-1)
    assert k.min() >= 1
    assert torch.equal(actions, first_k(probs, k.long()))  # the policy's own top k


def test_config_refuses_unknown_choices():
    with pytest.raises(ValueError, match="budget_masks"):
        TrainConfig(budget_masks="sometimes")
    with pytest.raises(ValueError, match="select"):
        TrainConfig(select="accuracy")


def test_bundles_without_a_recorded_rule_keep_the_rule_they_were_served_with(splits, tmp_path):
    _, served = train_tiny(splits, tiny_cfg(), "ft1", tmp_path)
    del served.metadata["fusion"]
    assert fusion_of(served) == "paper"
    served.lr_classifier = None
    assert fusion_of(served) == "hr-only"
    served.metadata["fusion"] = "paper"
    with pytest.raises(CheckpointError, match="needs an LR classifier"):
        fusion_of(served)
