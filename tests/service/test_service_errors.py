"""Bad input is a 4xx ``{code, detail}`` that names the problem, never a 500 (both modes)."""

from __future__ import annotations

import numpy as np
import pytest
from service_helpers import BANDS, geotiff_bytes, lr_array

TIFF = "image/tiff"


def post_plan(client, data: bytes, filename: str = "tile.tif", **form):
    return client.post("/v1/plans", files={"tile": (filename, data, TIFF)}, data=form)


def expect(response, status: int, code: str, *fragments: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "detail"} and body["code"] == code, body
    for fragment in fragments:
        assert fragment in body["detail"], body
    return body


def test_not_a_geotiff(client):
    expect(post_plan(client, b"just some text", "notes.txt"), 422, "invalid_raster", "notes.txt")


def test_another_raster_format(client):
    png = geotiff_bytes(lr_array(3).astype("uint8"), driver="PNG", crs=None)
    expect(post_plan(client, png, "tile.png"), 422, "invalid_raster", "PNG", "not a GeoTIFF")


def test_no_crs(client):
    expect(post_plan(client, geotiff_bytes(lr_array(), crs=None)), 422, "invalid_raster", "no CRS")


def test_wrong_band_count(client, lr_tile):
    expect(post_plan(client, lr_tile(bands=3)), 422, "wrong_band_count", "3 bands", "B02, B03, B04, B08")


def test_wrongly_named_bands(client, lr_tile):
    data = lr_tile(descriptions=["B02", "B03", "B04", "B05"])
    expect(post_plan(client, data), 422, "wrong_bands", "unexpected B05", "missing B08")


def test_all_nodata_tile(client):
    data = geotiff_bytes(np.zeros((4, 64, 64), "uint16"), nodata=0, descriptions=BANDS)
    expect(post_plan(client, data), 422, "empty_raster", "nodata")


def test_empty_upload(client):
    expect(post_plan(client, b""), 422, "missing_upload", "empty")


def test_missing_tile_field(client):
    expect(client.post("/v1/plans", data={"max_patches": "2"}), 422, "invalid_request", "tile")


def test_budget_out_of_range(client, lr_tile):
    expect(post_plan(client, lr_tile(), max_patches="99"), 422, "invalid_budget", "0..16")
    expect(post_plan(client, lr_tile(), max_price="-1"), 422, "invalid_request", "max_price")


def test_unknown_model(client, lr_tile):
    expect(post_plan(client, lr_tile(), model="nope"), 422, "unknown_model", "'nope'", "default")


def test_model_whose_checkpoint_is_missing(client, lr_tile):
    expect(post_plan(client, lr_tile(), model="broken"), 503, "invalid_checkpoint", "does not exist")


def test_unknown_plan(client):
    expect(client.get("/v1/plans/nope"), 404, "plan_not_found", "nope")
    expect(client.get("/v1/plans/nope/preview.png"), 404, "plan_not_found")
    expect(client.post("/v1/plans/nope/classify"), 404, "plan_not_found")


def test_unknown_route(client):
    expect(client.get("/v1/nowhere"), 404, "not_found")


def test_tile_over_the_pixel_cap(make_client, lr_tile):
    client = make_client(max_tile_pixels=1000)
    expect(post_plan(client, lr_tile()), 413, "tile_too_large", "64x64 px")


@pytest.fixture
def small_cap_client(make_client):
    return make_client(max_upload_bytes=4096)


def test_upload_over_the_cap_is_refused_from_its_declared_length(small_cap_client, lr_tile):
    expect(post_plan(small_cap_client, lr_tile()), 413, "upload_too_large", "4096 bytes")


def test_upload_over_the_cap_is_cut_off_while_streaming(small_cap_client):
    def chunks():
        # No Content-Length: the middleware must count the bytes as they arrive.
        yield b'--b\r\nContent-Disposition: form-data; name="tile"; filename="t.tif"\r\n\r\n'
        for _ in range(64):
            yield b"\0" * 1024

    response = small_cap_client.post(
        "/v1/plans", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"}
    )
    expect(response, 413, "upload_too_large")
