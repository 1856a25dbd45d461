"""Region GeoJSON bigger than Starlette's 1 MiB form-field default: accepted up to the upload limit as a
field or a file part, refused with 413 naming the limit past it (embedded and through Celery + Redis)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from region_helpers import FREE_PRICING, TILE_M, wait_done
from service_helpers import X0, Y1

MiB = 1024 * 1024


def detailed_region(min_bytes: int) -> str:
    """A Feature of at least ``min_bytes``: a 4,000-vertex circle 8 tiles across inside the 10x10-tile scene,
    and the survey notes an exported AOI carries (vertices alone would make the test slow: each edge tile
    intersects every vertex)."""
    t = np.linspace(0, 2 * np.pi, 4000, endpoint=False)
    cx, cy, r = X0 + 5 * TILE_M, Y1 - 5 * TILE_M, 4 * TILE_M
    ring = np.column_stack([cx + r * np.cos(t), cy + r * np.sin(t)]).tolist()
    polygon = {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}
    padding = max(0, min_bytes - len(json.dumps(polygon)))
    text = json.dumps(
        {"type": "Feature", "geometry": polygon, "properties": {"notes": "survey line " * (padding // 12 + 1)}}
    )
    assert len(text) >= min_bytes
    return text


@pytest.fixture(scope="module")
def big_region() -> str:
    return detailed_region(int(1.5 * MiB))


@pytest.fixture
def api(make_client, data_root, tmp_path):
    return make_client(data_root=data_root, upload_dir=tmp_path / "up", max_upload_bytes=4 * MiB)


FORM = {"raster_ref": "scene.tif", "region_crs": "EPSG:32618", "pricing": json.dumps(FREE_PRICING)}


def test_a_region_over_one_mib_is_accepted_as_a_field(api, big_region):
    response = api.post("/v1/estimates", data={**FORM, "region": big_region})
    assert response.status_code == 202, response.text
    job = wait_done(api, response.json()["id"])
    assert job["state"] == "succeeded", job["error"]
    assert 40 <= job["result"]["tiles"]["planned"] <= 64  # the circle's tiles, not the scene's 100


def test_a_region_over_one_mib_is_accepted_as_a_file_part(api, big_region):
    files = {"region": ("aoi.geojson", big_region.encode(), "application/geo+json")}
    response = api.post("/v1/estimates", data=FORM, files=files)
    assert response.status_code == 202, response.text
    assert wait_done(api, response.json()["id"])["state"] == "succeeded"


def test_a_region_file_that_is_not_text_is_refused(api):
    files = {"region": ("aoi.geojson", b"\xff\xfe\x00binary", "application/octet-stream")}
    response = api.post("/v1/estimates", data=FORM, files=files)
    assert response.status_code == 422 and response.json()["code"] == "invalid_region"


def test_a_region_over_the_upload_limit_gets_413_naming_it(make_client, data_root, tmp_path, big_region):
    small = make_client(data_root=data_root, upload_dir=tmp_path / "up", max_upload_bytes=MiB)
    response = small.post("/v1/estimates", data={**FORM, "region": big_region})
    assert response.status_code == 413
    body = response.json()
    assert body["code"] == "upload_too_large" and "PATCHDROP_MAX_UPLOAD_BYTES" in body["detail"]
    assert str(MiB) in body["detail"]
