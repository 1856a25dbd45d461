"""The bad-input matrix: rasters and requests that cannot be served get a specific 4xx naming the
problem; unusual but valid ones are served. Each case runs embedded and through Celery."""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import Geod
from rasterio.io import MemoryFile
from rasterio.transform import Affine, from_origin
from service_helpers import BANDS, PIXEL, X0, Y1, geotiff_bytes, lr_array

TIFF = "image/tiff"


def post_plan(client, data: bytes, filename: str = "tile.tif", **form):
    return client.post("/v1/plans", files={"tile": (filename, data, TIFF)}, data=form)


def expect_error(response, status: int, code: str, fragment: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "detail"} and body["code"] == code, body
    assert fragment in body["detail"], body


def deflated() -> bytes:
    profile = {
        "driver": "GTiff", "width": 64, "height": 64, "count": 4, "dtype": "uint16", "crs": "EPSG:32618",
        "transform": from_origin(X0, Y1, PIXEL, PIXEL), "compress": "deflate",
    }  # fmt: skip
    with MemoryFile() as memfile:
        with memfile.open(**profile) as dst:
            dst.write(lr_array())
        return memfile.read()


def corrupt() -> bytes:
    data = bytearray(deflated())
    middle = len(data) // 2
    data[middle : middle + 256] = b"\xff" * 256  # compressed strips no longer inflate
    return bytes(data)


def declared_huge() -> bytes:
    """Under 1 KiB on disk, 100,000 x 100,000 px in its header (sparse: no strip is written)."""
    profile = {
        "driver": "GTiff", "width": 100_000, "height": 100_000, "count": 4, "dtype": "uint16",
        "crs": "EPSG:32618", "transform": from_origin(X0, Y1, PIXEL, PIXEL), "tiled": False,
        "blockysize": 100_000, "sparse_ok": True, "compress": "deflate", "BIGTIFF": "YES",
    }  # fmt: skip
    with MemoryFile() as memfile:
        with memfile.open(**profile):
            pass
        data = memfile.read()
    assert len(data) < 1024
    return data


def partial_nodata() -> bytes:
    data = lr_array()
    data[:, :20, :20] = 0
    return geotiff_bytes(data, nodata=0, descriptions=BANDS)


def with_nans() -> bytes:
    data = lr_array().astype("float32")
    data[:, 10:30, 5:9] = np.nan
    return geotiff_bytes(data, descriptions=BANDS)


REFUSED = {
    "corrupt_geotiff": (corrupt, 422, "invalid_raster", "not a readable GeoTIFF"),
    "truncated_geotiff": (lambda: deflated()[: len(deflated()) // 2], 422, "invalid_raster", "not a readable GeoTIFF"),
    "zero_bytes": (lambda: b"", 422, "missing_upload", "empty (0 bytes)"),
    "text_named_tif": (lambda: b"II*\x00 certainly not a tiff", 422, "invalid_raster", "not a readable GeoTIFF"),
    "png_without_georeferencing": (
        lambda: geotiff_bytes(lr_array(3).astype("uint8"), driver="PNG", crs=None),
        422, "invalid_raster", "PNG file, not a GeoTIFF",
    ),
    "jpeg_without_georeferencing": (
        lambda: geotiff_bytes(lr_array(3).astype("uint8"), driver="JPEG", crs=None),
        422, "invalid_raster", "JPEG file, not a GeoTIFF",
    ),
    "geotiff_without_crs": (lambda: geotiff_bytes(lr_array(), crs=None), 422, "invalid_raster", "no CRS"),
    "rotated_geotransform": (
        lambda: geotiff_bytes(lr_array(), transform=Affine(40, 5, X0, 5, -40, Y1)),
        422, "invalid_raster", "rotated geotransform",
    ),
    "wrong_band_count": (lambda: geotiff_bytes(lr_array(5)), 422, "wrong_band_count", "5 bands"),
    "all_nodata": (
        lambda: geotiff_bytes(np.zeros((4, 64, 64), "uint16"), nodata=0, descriptions=BANDS),
        422, "empty_raster", "only nodata",
    ),
    "all_nan": (
        lambda: geotiff_bytes(np.full((4, 64, 64), np.nan, "float32"), descriptions=BANDS),
        422, "empty_raster", "only nodata",
    ),
    "smaller_than_the_patch_grid": (
        lambda: geotiff_bytes(lr_array(size=2), descriptions=BANDS), 422, "tile_too_small", "2x2 px",
    ),
    "header_declares_100k_by_100k_px": (declared_huge, 413, "tile_too_large", "100000x100000 px"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_unservable_raster_gets_a_specific_4xx(client, case):
    make, status, code, fragment = REFUSED[case]
    expect_error(post_plan(client, make()), status, code, fragment)


BAD_REQUESTS = {
    "invalid_json_instead_of_a_form": (
        lambda c: c.post("/v1/plans", content=b'{"tile": ', headers={"content-type": "application/json"}),
        "tile",
    ),
    "non_numeric_budget": (lambda c: post_plan(c, geotiff_bytes(lr_array()), max_patches="lots"), "max_patches"),
    "unknown_format": (
        lambda c: c.post("/v1/plans?format=xml", files={"tile": ("t.tif", geotiff_bytes(lr_array()), TIFF)}),
        "format",
    ),
    "malformed_multipart": (
        lambda c: c.post("/v1/plans", content=b"--x\r\ngarbage", headers={"content-type": "multipart/form-data; boundary=x"}),
        "tile",
    ),
}  # fmt: skip


def test_a_multipart_body_without_a_boundary_is_a_malformed_request(client):
    response = client.post("/v1/plans", content=b"tile=1", headers={"content-type": "multipart/form-data"})
    expect_error(response, 400, "malformed_request", "boundary")


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_malformed_request_is_invalid_request(client, case):
    send, fragment = BAD_REQUESTS[case]
    expect_error(send(client), 422, "invalid_request", fragment)


SERVED = {
    "uint8": lambda: geotiff_bytes(lr_array().astype("uint8"), descriptions=BANDS),
    "int16": lambda: geotiff_bytes(lr_array().astype("int16"), descriptions=BANDS),
    "uint16": lambda: geotiff_bytes(lr_array(), descriptions=BANDS),
    "float32": lambda: geotiff_bytes(lr_array().astype("float32"), descriptions=BANDS),
    "partial_nodata": partial_nodata,
    "nans": with_nans,
    "no_band_names": lambda: geotiff_bytes(lr_array()),
}


@pytest.mark.parametrize("case", sorted(SERVED))
def test_unusual_but_valid_raster_is_planned(client, case):
    response = post_plan(client, SERVED[case]())
    assert response.status_code == 201, response.text
    assert len(response.json()["patch_probabilities"]) == 16


def test_geographic_tile_is_measured_on_the_ellipsoid(client):
    west, north, step = -75.6, 37.8, 0.0005  # ~44 m x ~55 m pixels
    data = geotiff_bytes(lr_array(), crs="EPSG:4326", transform=from_origin(west, north, step, step))
    response = post_plan(client, data, filename="wgs84.tif")
    assert response.status_code == 201, response.text
    tile = response.json()["tile"]
    east, south = west + 64 * step, north - 64 * step
    geodesic_km2 = (
        abs(Geod(ellps="WGS84").polygon_area_perimeter([west, east, east, west], [south, south, north, north])[0]) / 1e6
    )
    assert tile["crs_code"] == "EPSG:4326"
    assert tile["area_km2"] == pytest.approx(geodesic_km2, rel=0.005)


def test_a_gdal_read_error_names_the_upload_and_the_failing_block(client):
    detail = post_plan(client, corrupt(), filename="scene.tif").json()["detail"]
    assert "scene.tif, band 1: IReadBlock failed" in detail
    assert "previous exception" not in detail
