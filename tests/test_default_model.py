"""The shipped default bundle loads in a fresh clone and plans the sample tile and a generated tile."""

import json

import numpy as np
import pytest

from models.checkpoint import load_bundle
from models.cli import DEFAULT_CHECKPOINT, main
from models.inference import decide_patches
from models.raster import read_tile

SAMPLE_TILE = DEFAULT_CHECKPOINT.parent / "sample_lr_tile.tif"
# Recorded with the committed checkpoint on this tile (CPU, float32).
SAMPLE_PROBABILITIES = [
    0.26766, 0.502224, 0.11195, 0.879703, 0.304492, 0.198596, 0.683403, 0.125088,
    0.371245, 0.211214, 0.544586, 0.779165, 0.367246, 0.317919, 0.924282, 0.061546,
]  # fmt: skip


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(DEFAULT_CHECKPOINT)


def test_default_bundle_metadata_describes_its_input(bundle):
    meta = bundle.metadata
    assert meta["model_id"] == "sentinel2-demo-v1" and meta["stage"] == "ft1"
    assert bundle.bands == ["B02", "B03", "B04", "B08"]
    assert bundle.lr_size == (8, 8) and bundle.hr_size == (32, 32)
    assert meta["lr_pixel_size"] == 40.0 and meta["hr_pixel_size"] == 10.0
    assert bundle.class_names == ["built_bare", "fine_mosaic", "vegetation", "water"]
    assert meta["metrics"]["ft1"]["patches"] < 16 and DEFAULT_CHECKPOINT.stat().st_size < 10_000_000


def test_sample_tile_plan_matches_the_recorded_one(bundle):
    tile = read_tile(SAMPLE_TILE, bundle.lr_size, band_count=4)
    decision = decide_patches(bundle, tile.array)[0]
    assert decision.probabilities == pytest.approx(SAMPLE_PROBABILITIES, abs=2e-3)
    # Patch 1 sits at 0.502, on the greedy threshold: only the clear choices are pinned.
    assert {3, 6, 10, 11, 14} <= set(decision.selected) <= {1, 3, 6, 10, 11, 14}
    assert sum(decision.lr_probabilities.values()) == pytest.approx(1.0, abs=1e-5)


def test_cli_plans_a_generated_four_band_tile(geotiff, capsys):
    rng = np.random.default_rng(7)
    data = rng.normal([[[1190]], [[943]], [[718]], [[920]]], 150, (4, 8, 8)).clip(1, 4000).astype("uint16")
    tile = geotiff(data, pixel_size=40.0)
    assert main(["plan", str(tile)]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert len(plan["probabilities"]) == 16
    assert plan["selected_patches"] == [i for i, p in enumerate(plan["probabilities"]) if p >= 0.5]
    assert plan["lr_prediction"]["class"] in ("built_bare", "fine_mosaic", "vegetation", "water")
    assert set(plan["footprints"]) == {str(i) for i in plan["selected_patches"]}
