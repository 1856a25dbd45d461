"""SceneReader: decimated window reads of a large scene, the same average GDAL computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from models.errors import InvalidRasterError
from models.geo.raster import SceneReader, mask_polygons

BANDS = ["B02", "B03", "B04", "B08"]


def gdal_average(path, window, out_hw):
    row, col, h, w = window
    with rasterio.open(path) as ds:
        return ds.read(
            window=Window(col, row, w, h), out_shape=(4, *out_hw), resampling=Resampling.average, masked=True
        )


@pytest.mark.parametrize("nodata", [None, 0])
def test_block_average_matches_gdal_average(geotiff, nodata):
    data = np.random.default_rng(3).integers(1, 4000, (4, 64, 96)).astype("uint16")
    if nodata is not None:
        data[:, :8, :8] = 0  # one whole output pixel without data
        data[:, 8:10, 8:12] = 0  # part of another: averaged over its valid pixels
    path = geotiff(data, pixel_size=10.0, nodata=nodata)
    window, out_hw = (16, 0, 48, 96), (12, 24)
    with SceneReader(path, BANDS) as reader:
        ours = reader.read(window, out_hw)
        shifted = reader.read((0, 0, 64, 96), (16, 24))
    ref = gdal_average(path, window, out_hw)
    assert ours.shape == (4, 12, 24) and ours.dtype == np.float32
    assert np.abs(ours.filled(0) - ref.filled(0)).max() <= 0.5  # GDAL rounds to the integer type
    assert (np.ma.getmaskarray(ours) == np.ma.getmaskarray(ref)).all()
    if nodata is not None:
        assert shifted.mask[:, 0, 0].all() and not shifted.mask[:, 2, 2].any()
        assert shifted[0, 2, 2] == pytest.approx(data[0, 8:12, 8:12][data[0, 8:12, 8:12] > 0].mean(), abs=1e-3)


def test_scene_reader_refuses_wrong_bands(geotiff):
    path = geotiff(np.ones((3, 16, 16), "uint16"), pixel_size=10.0)
    with pytest.raises(InvalidRasterError, match="3 bands"), SceneReader(path, BANDS):
        pass


def test_mask_polygons_merges_4_connected_cells_and_keeps_holes():
    mask = np.zeros((5, 5), bool)
    mask[0, 3:5] = True  # a 2-cell bar
    mask[2:5, 2:5] = True
    mask[3, 3] = False  # a ring around a hole
    mask[1, 1] = True  # touches the ring only at a corner: a polygon of its own
    polys = mask_polygons(mask, (10.0, 0.0, 0.0, 0.0, -10.0, 50.0))
    assert sorted(round(p.area) for p in polys) == [100, 200, 800]
    ring = max(polys, key=lambda p: p.area)
    assert len(ring.interiors) == 1


def test_the_batch_policy_path_matches_the_eager_policy():
    import torch

    from models.nn.checkpoint import load_bundle
    from models.nn.inference import policy_probabilities

    bundle = load_bundle(Path(__file__).resolve().parents[1] / "models" / "assets" / "default.pt").eval()
    lr = np.random.default_rng(0).integers(200, 3000, (300, 4, 8, 8)).astype(np.float32)
    fast = policy_probabilities(bundle, lr, batch_size=128)
    with torch.inference_mode():
        eager = torch.sigmoid(bundle.policy(bundle.normalise(torch.from_numpy(lr)))).numpy()
    assert fast.shape == (300, 16)
    assert np.abs(fast - eager).max() < 1e-4


def test_each_thread_gets_its_own_prepared_region():
    # GEOS prepared geometries are not thread-safe: the order builders run in parallel threads.
    import json
    import threading

    from models.acquisition.region import _cached_region

    text = json.dumps({"type": "Polygon", "coordinates": [[[0, 0], [5, 0], [5, 5], [0, 5], [0, 0]]]})
    here = _cached_region(text)
    assert _cached_region(text) is here  # reused within a thread
    other: list = []
    t = threading.Thread(target=lambda: other.append(_cached_region(text)))
    t.start()
    t.join()
    assert other[0] is not here and other[0].equals(here)
