"""Property-based rasters (hypothesis): any GeoTIFF a client may send gets 201 or a 4xx, never a 5xx.

Sizes, band counts, dtypes, nodata, NaNs, CRSs (projected, geographic, polar, web mercator) and
pixel sizes are drawn at random; embedded only (the Celery mode runs the same task code).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasterio.transform import from_origin
from service_helpers import geotiff_bytes

EXAMPLES = int(os.environ.get("PATCHDROP_FUZZ_EXAMPLES", "40"))
CRS_ORIGINS = {  # a CRS and an origin inside its area of use
    "EPSG:32618": (446610.0, 4179300.0),
    "EPSG:4326": (-75.6, 37.8),
    "EPSG:3857": (-8415000.0, 4550000.0),
    "EPSG:3031": (-100000.0, 100000.0),  # Antarctic polar stereographic
    "EPSG:32760": (500000.0, 1000000.0),  # UTM 60S, next to the antimeridian
}


@st.composite
def rasters(draw) -> bytes:
    crs = draw(st.sampled_from(sorted(CRS_ORIGINS)))
    bands = draw(st.sampled_from([1, 3, 4, 4, 4, 5]))
    height, width = draw(st.integers(1, 96)), draw(st.integers(1, 96))
    dtype = draw(st.sampled_from(["uint8", "int16", "uint16", "float32", "float64"]))
    seed = draw(st.integers(0, 2**16))
    data = np.random.default_rng(seed).integers(0, 255, (bands, height, width)).astype(dtype)
    if dtype.startswith("float") and draw(st.booleans()):
        data[:, : draw(st.integers(0, height)), :] = np.nan
    nodata = (
        draw(st.sampled_from([None, 0]))
        if not dtype.startswith("float")
        else draw(st.sampled_from([None, 0.0, np.nan]))
    )
    geographic = crs == "EPSG:4326"
    pixel = draw(st.sampled_from([0.0001, 0.0004, 0.01]) if geographic else st.sampled_from([0.5, 10.0, 40.0, 1000.0]))
    x0, y0 = CRS_ORIGINS[crs]
    return geotiff_bytes(data, crs=crs, transform=from_origin(x0, y0, pixel, pixel), nodata=nodata)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["embedded"])  # the raster checks run in the API, before any dispatch
def test_no_raster_gets_a_5xx(make_client, mode):
    embedded = make_client()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=os.environ.get("PATCHDROP_FUZZ_RANDOM") is None,
        suppress_health_check=list(HealthCheck),
    )
    @given(rasters())
    def check(tile: bytes) -> None:
        response = embedded.post("/v1/plans", files={"tile": ("fuzz.tif", tile, "image/tiff")})
        assert response.status_code in (201, 413, 422), response.text

    check()
