"""The whole training chain on a few hundred generated images, through the real CLI."""

import gzip
import json

import numpy as np
import pytest
import torch

from models.datasets.fashion_mnist import load_scattered_fashion_mnist
from models.nn.checkpoint import load_bundle
from models.train import main


def write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fake_fashion_mnist(tmp_path):
    """Class-dependent 28x28 images in the Fashion-MNIST IDX format."""
    rng = np.random.default_rng(0)
    root = tmp_path / "fmnist"
    root.mkdir()
    for prefix, n in (("train", 200), ("t10k", 60)):
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 60, (n, 28, 28))
        for i, y in enumerate(labels):
            images[i, 2 * y : 2 * y + 6, 4:24] = 250  # a bar whose height encodes the class
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return root


@pytest.mark.slow
def test_chain_writes_loadable_checkpoints_and_report(fake_fashion_mnist, tmp_path):
    out = tmp_path / "run"
    results = tmp_path / "results.json"
    epochs = [f"--set={k}=1" for k in ("cls_epochs", "lr_cls_epochs", "pt_epochs", "ft1_epochs", "ft2_epochs")]
    code = main([
        "chain", "--benchmark", "fashion_mnist", "--data-root", str(fake_fashion_mnist),
        "--out", str(out), "--baselines", "fixed-h,stochastic", "--set=eval_batch=64",
        "--set=cls_batch=64", "--set=pt_batch=64", "--set=ft_batch=64", "--threads=1", *epochs,
        "--set=distill=0.5", "--set=sigma_ft2=2.5", "--set=budget_mix=0.5", "--set=hard_positive_epochs=1",
        "--results-json", str(results),
    ])  # fmt: skip
    assert code == 0
    stages_and_baselines = ("classifiers.pt", "pt.pt", "ft1.pt", "ft2.pt", "baseline-fixed-h.pt",
                            "baseline-stochastic.pt", "baseline-stn.pt", "lr-kd.pt")  # fmt: skip
    for name in stages_and_baselines:
        bundle = load_bundle(out / name)
        assert bundle.hr_size == (32, 32) and bundle.lr_size == (8, 8)
    ft2 = load_bundle(out / "ft2.pt")
    assert ft2.metadata["stage"] == "ft2"
    assert set(ft2.metadata["metrics"]) == {"classifiers", "pt", "ft1", "ft2"}
    assert ft2.metadata["config"]["distill"] == 0.5 and ft2.metadata["config"]["sigma_ft2"] == 2.5
    assert ft2.metadata["config"]["budget_mix"] == 0.5
    # The classifiers checkpoint and Ft-2 share the frozen LR classifier.
    cls = load_bundle(out / "classifiers.pt")
    for a, b in zip(cls.lr_classifier.state_dict().values(), ft2.lr_classifier.state_dict().values(), strict=False):
        assert torch.equal(a, b)
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["methods"]["HR"]["patches"] == 16.0 and report["methods"]["LR"]["patches"] == 0.0
    assert set(report["sweep"]) == {
        "PatchDrop Ft-1",
        "PatchDrop Ft-2",
        "Fixed-H",
        "Stochastic",
        "Random (Ft-1 classifier)",
        "Fixed-H (two-stream)",
        "Stochastic (two-stream)",
        "Random (Ft-1 classifier) (two-stream)",
        "STN",
    }
    # Baselines are trained in PatchDrop's budget regime, and say what they buy.
    assert load_bundle(out / "baseline-fixed-h.pt").metadata["baseline"]["budget_mix"] == 0.5
    assert "columns" in report["baselines_buy"]["Fixed-H"]
    assert [report["sweep"]["Fixed-H"][str(k)]["patches"] for k in (1, 16)] == [1.0, 16.0]
    for png in ("accuracy_vs_patches.png", "patch_heatmap.png", "examples.png"):
        assert (out / "report" / png).stat().st_size > 1000
    assert main(["export", "--out", str(out), "--to", str(tmp_path / "default.pt"), "--model-id", "demo-v1"]) == 0
    exported = load_bundle(tmp_path / "default.pt")
    assert exported.metadata["model_id"] == "demo-v1" and exported.metadata["stage"] in ("ft1", "ft2")
    flat = json.loads(results.read_text())
    assert {"date", "commit", "command", "HR", "LR", "Ft-2"} <= set(flat)
    assert {"STN @ S(Ft-1)", "LR (KD)", "Fixed-H (two-stream) @ S(Ft-2)", "Stochastic (two-stream) @ S(Ft-2)",
            "CutOut", "CutOut (LR-filled)", "Hard positives", "Hard positives (LR-filled)"} <= set(flat)  # fmt: skip


def test_scattered_items_lie_inside_their_masks(fake_fashion_mnist):
    splits = load_scattered_fashion_mnist(fake_fashion_mnist, val_size=100, seed=3)
    assert splits.train.hr.shape[1:] == (1, 64, 64) and len(splits.val) == 20  # 10 % of 200
    masks = splits.test.extra["object_mask"]
    assert masks.shape == (60, 64, 64)
    # every item pixel is drawn at full item intensity on the canvas
    assert (splits.test.hr[:, 0][masks] > 0).all()
    again = load_scattered_fashion_mnist(fake_fashion_mnist, val_size=100, seed=3)
    assert torch.equal(again.test.hr, splits.test.hr)
