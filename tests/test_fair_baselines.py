"""Issue 15: baselines trained in PatchDrop's budget regime, the STN baseline, hard positives and CutOut."""

import pytest
import torch
from torch import nn

from models.datasets.base import ImageSet, Splits
from models.geo.patch_grid import PatchGrid
from models.nn.checkpoint import build_bundle
from models.nn.policy import BASELINE_BUYS, FIXED_H_ORDER
from models.nn.stn import build_locator, stn_scores, window_centres, window_scores, window_side
from models.training import stages
from models.training.config import TrainConfig

GRID = PatchGrid()


def test_centred_window_of_four_patches_buys_the_four_centre_patches():
    scores = window_scores(torch.tensor([[0.5, 0.5]]), window_side(4, 16), GRID)
    assert set(stages.first_k(scores, 4)[0].nonzero().flatten().tolist()) == {5, 6, 9, 10}
    # coverage 1 inside the window, 0 outside (up to the distance tie-break)
    assert scores[0, 5].item() == pytest.approx(1.0, abs=1e-2) and scores[0, 0].item() < 0


def test_window_in_the_top_left_corner_buys_patch_0_first():
    scores = window_scores(torch.tensor([[0.125, 0.125]]), window_side(1, 16), GRID)
    assert stages.first_k(scores, 1)[0].nonzero().flatten().tolist() == [0]
    # beyond the window's patches, the nearest ones come next (1 and 4 before 15)
    order = torch.argsort(scores[0], descending=True).tolist()
    assert order.index(1) < order.index(15) and order.index(4) < order.index(15)


def test_window_stays_inside_the_image_and_its_place_has_a_gradient():
    side = window_side(6, 16)
    centres = window_centres(torch.tensor([[50.0, -50.0]]), side)
    assert centres[0, 0] <= 1 - side / 2 + 1e-6 and centres[0, 1] >= side / 2 - 1e-6
    raw = torch.tensor([[0.3, -0.2]], requires_grad=True)
    scores = window_scores(window_centres(raw, side), side, GRID)
    scores[0, 15].backward()  # more of the bottom-right patch: move the window down and right
    assert raw.grad[0, 0] > 0 and raw.grad[0, 1] > 0


def test_locator_starts_at_the_centre():
    locator = build_locator(1).eval()
    scores = stn_scores(locator, torch.randn(3, 1, 8, 8), window_side(4, 16), GRID)
    assert (stages.first_k(scores, 4)[:, [5, 6, 9, 10]] == 1).all()


def test_fixed_h_description_says_it_buys_columns_first():
    rows_cols = [divmod(i, 4) for i in FIXED_H_ORDER[:8]]
    assert {c for _, c in rows_cols} == {1, 2}  # the two middle columns, row-major ids
    assert "columns" in BASELINE_BUYS["fixed-h"] and "rows" in BASELINE_BUYS["fixed-v"]


class Recorder(nn.Module):
    """A linear classifier that records the masked inputs it is trained on."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(16 * 16, 3)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen.append(x.detach().clone())
        return self.lin(x.flatten(1))


def tiny_context(**cfg) -> stages.Context:
    g = torch.Generator().manual_seed(0)
    images = ImageSet(torch.rand(40, 1, 16, 16, generator=g) * 100 + 1, torch.arange(40) % 3,
                      ["a", "b", "c"], ["grey"], 4)  # fmt: skip
    bundle = build_bundle(class_names=["a", "b", "c"], bands=["grey"], band_mean=[50.0], band_std=[30.0],
                          hr_size=(16, 16), lr_size=(4, 4), fill="zeros")  # fmt: skip
    bundle.hr_classifier = Recorder()
    config = TrainConfig(ft_batch=20, augment_flip=False, **cfg)
    return stages.Context(bundle, Splits(images, images, images), config, torch.device("cpu"))


def patches_bought(x: torch.Tensor) -> torch.Tensor:
    """Bought patches per image of zero-filled masked inputs (every HR pixel is > 0 before masking)."""
    kept = x[:, 0].reshape(len(x), 4, 4, 4, 4).abs().amax(dim=(2, 4)) > 0
    return kept.reshape(len(x), 16).sum(-1)


def test_baseline_trains_at_every_budget_like_patchdrop():
    ctx = tiny_context(budget_mix=0.5, ft1_epochs=1)
    stages.finetune_baseline(ctx, "fixed-h", 3.0)
    batches = ctx.bundle.hr_classifier.seen
    assert [len(x) for x in batches] == [30, 30]  # 20 at the mean budget + 10 at random budgets
    counts = torch.cat([patches_bought(x[20:]) for x in batches])
    assert (patches_bought(torch.cat([x[:20] for x in batches])) == 3).all()
    assert counts.min() >= 1 and counts.max() <= 16 and len(set(counts.tolist())) > 3


def test_baseline_without_budget_mix_trains_at_its_budget_only():
    ctx = tiny_context(budget_mix=0.0, ft1_epochs=1)
    stages.finetune_baseline(ctx, "fixed-h", 3.0)
    assert [len(x) for x in ctx.bundle.hr_classifier.seen] == [20, 20]


@pytest.mark.parametrize(("mode", "hidden"), [("cutout", (1, 4)), ("control", (0, 0))])
def test_cutout_hides_one_to_four_patches_and_control_none(mode, hidden):
    ctx = tiny_context(hard_positive_epochs=1)
    stages.augment_finetune(ctx, None, mode, "zeros")
    counts = 16 - torch.cat([patches_bought(x) for x in ctx.bundle.hr_classifier.seen])
    assert counts.min() >= hidden[0] and counts.max() <= hidden[1]
    if mode == "cutout":
        assert len(set(counts.tolist())) > 1


def test_hard_positives_hide_the_policys_top_patches():
    ctx = tiny_context(hard_positive_epochs=1)

    class Prefers(nn.Module):  # a policy that always ranks patch 15, 14, 13, ... first
        def forward(self, lr):
            return torch.arange(16.0).expand(len(lr), -1)

    stages.augment_finetune(ctx, Prefers(), "hard-positives", "zeros")
    for x in ctx.bundle.hr_classifier.seen:
        kept = x[:, 0].reshape(len(x), 4, 4, 4, 4).abs().amax(dim=(2, 4)).reshape(len(x), 16) > 0
        assert kept[:, 15].logical_not().all() and kept[:, :12].all()


def _fair_comparison():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "fair_comparison.py"
    spec = importlib.util.spec_from_file_location("fair_comparison", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_difference_under_two_standard_errors_is_a_tie():
    fc = _fair_comparison()
    assert fc.verdict(0.5, 0.45) == "tie (within noise)"
    assert fc.verdict(1.0, 0.45) == "met" and fc.verdict(-1.0, 0.45) == "missed"
    assert fc.verdict(2.5, 0.45, need=2.0).startswith("not shown") and fc.verdict(3.0, 0.45, need=2.0) == "met"
    d, se = fc.diff({"accuracy": 90.0, "se": 0.3}, {"accuracy": 89.0, "se": 0.4})
    assert d == pytest.approx(1.0) and se == pytest.approx(0.5)
