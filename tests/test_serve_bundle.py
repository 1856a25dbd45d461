"""``python -m models.train serve``: a run's served bundle is Pt's policy, its HR classifier and the
LR classifier named, answered by the S/P rule."""

import numpy as np
import pytest
import torch

from models.errors import CheckpointError
from models.nn.checkpoint import build_bundle, load_bundle, save_bundle
from models.nn.inference import classify, decide_patches
from models.train import main, serve


def bundle(seed: int, stage: str):
    torch.manual_seed(seed)
    b = build_bundle(
        class_names=["water", "vegetation", "built"], bands=["B02", "B03", "B04", "B08"],
        band_mean=[1000.0, 900.0, 800.0, 2000.0], band_std=[300.0, 300.0, 300.0, 600.0],
        hr_size=(32, 32), lr_size=(8, 8), model_id=stage,
    )  # fmt: skip
    b.metadata.update(stage=stage, fusion="hr-only", metrics={stage: {"acc": 0.5, "epoch": 3}})
    return b


def same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


@pytest.mark.parametrize("lr_from", [None, "lr-kd.pt"])
def test_served_bundle_is_pts_policy_with_the_named_lr_classifier(tmp_path, lr_from):
    pt, donor = bundle(0, "pt"), bundle(0, "lr-kd")  # one run: the same classifiers.pt before Pt and lr-kd
    torch.manual_seed(1)
    for p in donor.lr_classifier.parameters():  # what lr-kd retrained
        torch.nn.init.normal_(p)
    donor.metadata["lr_kd"] = {"weight": 1.0, "temperature": 2.0, "epochs": 15}
    save_bundle(pt, tmp_path / "pt.pt")
    save_bundle(donor, tmp_path / "lr-kd.pt")
    args = ["serve", "--out", str(tmp_path), "--to", str(tmp_path / "served.pt")]
    assert main(args + (["--lr-classifier", lr_from] if lr_from else [])) == 0
    served = load_bundle(tmp_path / "served.pt")
    assert served.metadata["fusion"] == "paper"
    assert same(served.policy, pt.policy) and same(served.hr_classifier, pt.hr_classifier)
    lr_source = donor if lr_from else pt
    assert same(served.lr_classifier, lr_source.lr_classifier)
    assert not same(served.lr_classifier, (pt if lr_from else donor).lr_classifier)
    if lr_from:
        assert served.metadata["lr_classifier"] == {
            "source": "lr-kd.pt", "stage": "lr-kd", "weight": 1.0, "temperature": 2.0, "epochs": 15,
            "validation": {"acc": 0.5, "epoch": 3},
        }  # fmt: skip
    else:
        assert "lr_classifier" not in served.metadata
    # No patches bought: the served answer is the LR classifier it was given.
    lr = np.random.default_rng(0).uniform(500, 2500, (4, 8, 8)).astype("float32")
    hr = np.zeros((4, 32, 32), "float32")
    want = decide_patches(lr_source.eval(), lr)[0].lr_probabilities
    got = classify(served, lr, hr, [[]])[0].probabilities
    assert got == pytest.approx(want, abs=1e-5)


def test_an_lr_classifier_from_another_run_is_refused(tmp_path):
    """Its HR classifier differs from Pt's: it was trained beside other weights (or other data)."""
    save_bundle(bundle(0, "pt"), tmp_path / "pt.pt")
    save_bundle(bundle(1, "lr-kd"), tmp_path / "lr-kd.pt")
    with pytest.raises(CheckpointError, match="not from the run"):
        serve(tmp_path, tmp_path / "served.pt", "lr-kd.pt")
    assert not (tmp_path / "served.pt").exists()


def test_an_lr_classifier_for_other_classes_is_refused(tmp_path):
    pt = bundle(0, "pt")
    donor = bundle(0, "lr-kd")
    donor.metadata["class_names"] = ["water", "vegetation", "bare"]
    save_bundle(pt, tmp_path / "pt.pt")
    save_bundle(donor, tmp_path / "lr-kd.pt")
    with pytest.raises(CheckpointError, match="not from the run"):
        serve(tmp_path, tmp_path / "served.pt", "lr-kd.pt")
