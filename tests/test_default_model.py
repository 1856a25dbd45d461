"""The shipped default bundle loads in a fresh clone and plans the sample tile and a generated tile."""

import json

import numpy as np
import pytest
import torch

from models.assets import DEFAULT_CHECKPOINT
from models.geo.raster import read_tile
from models.nn.checkpoint import load_bundle
from models.nn.inference import classify, decide_patches
from patchdrop.cli import main

SAMPLE_TILE = DEFAULT_CHECKPOINT.parent / "sample_lr_tile.tif"
# Recorded with the committed checkpoint on this tile (CPU, float32).
SAMPLE_PROBABILITIES = [
    0.764276, 0.546794, 0.14251, 0.744028, 0.820054, 0.766003, 0.625467, 0.610889,
    0.759691, 0.621418, 0.75553, 0.636674, 0.310053, 0.139455, 0.349177, 0.23142,
]  # fmt: skip


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(DEFAULT_CHECKPOINT)


def test_default_bundle_metadata_describes_its_input(bundle):
    meta = bundle.metadata
    assert meta["model_id"] == "sentinel2-demo-v4" and meta["stage"] == "pt" and meta["fusion"] == "paper"
    assert bundle.bands == ["B02", "B03", "B04", "B08"]
    assert bundle.lr_size == (8, 8) and bundle.hr_size == (32, 32)
    assert meta["lr_pixel_size"] == 40.0 and meta["hr_pixel_size"] == 10.0
    assert bundle.class_names == ["built_bare", "fine_mosaic", "vegetation", "water"]
    assert meta["metrics"]["pt"]["patches"] < 16 and DEFAULT_CHECKPOINT.stat().st_size < 10_000_000
    assert "validation" in meta["training_notes"]
    # v4's LR classifier is the lr-kd stage's (15 epochs, distillation weight 1), not the pretrained one.
    lr = meta["lr_classifier"]
    assert (lr["source"], lr["stage"], lr["epochs"], lr["weight"]) == ("lr-kd.pt", "lr-kd", 15, 1.0)


def test_sample_tile_plan_matches_the_recorded_one(bundle):
    tile = read_tile(SAMPLE_TILE, bundle.lr_size, band_count=4)
    decision = decide_patches(bundle, tile.array)[0]
    assert decision.probabilities == pytest.approx(SAMPLE_PROBABILITIES, abs=2e-3)
    # The nearest to the greedy threshold is patch 1 at 0.547, clear of it.
    assert sorted(decision.selected) == [0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert sum(decision.lr_probabilities.values()) == pytest.approx(1.0, abs=1e-5)


def test_cli_plans_a_generated_four_band_tile(geotiff, capsys):
    rng = np.random.default_rng(7)
    data = rng.normal([[[1190]], [[943]], [[718]], [[920]]], 150, (4, 8, 8)).clip(1, 4000).astype("uint16")
    tile = geotiff(data, pixel_size=40.0)
    assert main(["plan", str(tile)]) == 0
    plan = json.loads(capsys.readouterr().out)
    probs = plan["patch_probabilities"]
    assert len(probs) == 16
    assert plan["purchase"]["selected_patches"] == sorted(
        (i for i, p in enumerate(probs) if p >= 0.5), key=lambda i: -probs[i]
    )
    assert plan["lr_prediction"]["class"] in ("built_bare", "fine_mosaic", "vegetation", "water")
    assert [p["id"] for p in plan["patches"] if p["selected"]] == sorted(plan["purchase"]["selected_patches"])


def test_no_patches_is_the_lr_classifier_and_the_whole_tile_the_hr_classifier(bundle):
    """The S/P rule the default is served with: buying more moves the answer from LR to HR, never past."""
    lr = read_tile(SAMPLE_TILE, bundle.lr_size, band_count=4).array
    rng = np.random.default_rng(3)
    hr = rng.normal(np.array(bundle.metadata["band_mean"])[:, None, None], 100, (4, 32, 32)).clip(1, 5000)
    nothing, everything = (
        classify(bundle, lr, np.zeros_like(hr), [[]])[0],
        classify(bundle, lr, hr, [list(range(16))])[0],
    )
    with torch.inference_mode():
        lr_probs = decide_patches(bundle, lr)[0].lr_probabilities
        hr_probs = bundle.hr_classifier(bundle.normalise(torch.as_tensor(hr, dtype=torch.float32)[None])).softmax(-1)[0]
    assert nothing.probabilities == pytest.approx(lr_probs, abs=1e-6)
    assert list(everything.probabilities.values()) == pytest.approx(hr_probs.tolist(), abs=1e-6)
