"""Small generated scenes and regions for the region-estimate tests.

The test bundle (``service_helpers.random_bundle``) reads 16x16 px LR tiles and
always buys patches 5, 6 and 9; its metadata names no pixel size, so a tile is
16 native pixels: 160 m on these 10 m scenes, patches of 40 m (0.0016 km²).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from rasterio.transform import from_origin
from service_helpers import BANDS, X0, Y1, geotiff_bytes
from shapely.geometry import box, mapping
from shapely.geometry.base import BaseGeometry

PIXEL = 10.0
TILE_M = 160.0
PATCH_KM2 = 0.04 * 0.04
FREE_PRICING = {"price_per_km2": 20.0, "min_area_km2": 0.0, "min_width_m": 0.0, "min_order_charge": 0.0}


def write_scene(
    path: Path, width: int = 160, height: int = 160, nodata: float | None = None, seed: int = 0
) -> np.ndarray:
    """A 4-band uint16 10 m scene at (X0, Y1) in UTM 18N with band names; returns its pixels to edit."""
    data = np.random.default_rng(seed).integers(300, 2500, (4, height, width)).astype("uint16")
    save_scene(path, data, nodata)
    return data


def save_scene(path: Path, data: np.ndarray, nodata: float | None = None) -> Path:
    """A tiled GeoTIFF of 10 m pixels at (X0, Y1) with the model's band names (16 px blocks, as COGs have)."""
    transform = from_origin(X0, Y1, PIXEL, PIXEL)
    tiff = geotiff_bytes(data, transform=transform, descriptions=list(BANDS), nodata=nodata, tiled=True,
                         blockxsize=16, blockysize=16)  # fmt: skip
    path.write_bytes(tiff)
    return path


def tiles_box(col0: float, row0: float, col1: float, row1: float) -> BaseGeometry:
    """A box in the scene's CRS from tile coordinates (col, row from the top-left; fractions allowed)."""
    return box(X0 + col0 * TILE_M, Y1 - row1 * TILE_M, X0 + col1 * TILE_M, Y1 - row0 * TILE_M)


def geojson_text(geom: BaseGeometry) -> str:
    return json.dumps(mapping(geom))


def wait_done(client, job_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] not in ("queued", "running") or time.monotonic() > deadline:
            return job
        time.sleep(0.05)
