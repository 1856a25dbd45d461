"""Bands matched by meaning (models.geo.bands) and what reading a tile makes of them."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from models.errors import BandMismatchError, InvalidRasterError, WrongBandCountError
from models.geo.bands import LANDSAT_OLI, LANDSAT_TM, SENTINEL2, match_by_meaning, sensor_warning
from models.geo.raster import read_tile

BANDS = ["B02", "B03", "B04", "B08"]  # the shipped model's: blue, green, red, nir


@pytest.mark.parametrize(
    ("descriptions", "indexes", "sensor"),
    [
        (["B02", "B03", "B04", "B08"], [1, 2, 3, 4], SENTINEL2),
        (["B08", "B04", "B03", "B02"], [4, 3, 2, 1], SENTINEL2),
        (["B2", "B3", "B4", "B8"], [1, 2, 3, 4], SENTINEL2),
        (["B2", "B3", "B4", "B5"], [1, 2, 3, 4], LANDSAT_OLI),  # Landsat 8/9
        (["SR_B5", "SR_B4", "SR_B3", "SR_B2"], [4, 3, 2, 1], LANDSAT_OLI),  # Collection 2 level 2 names
        (
            ["LC09_L2SP_014032_B2", "LC09_L2SP_014032_B3", "LC09_L2SP_014032_B4", "LC09_L2SP_014032_B5"],
            [1, 2, 3, 4],
            LANDSAT_OLI,
        ),
        (["B1", "B2", "B3", "B4"], [1, 2, 3, 4], LANDSAT_TM),  # Landsat 5/7
        (["blue", "green", "red", "nir"], [1, 2, 3, 4], None),
        (["NIR", "Red", "Green", "Blue"], [4, 3, 2, 1], None),
        (["Band 1", "Band 2", "Band 3", "Band 4"], [1, 2, 3, 4], None),  # says nothing: file order
        ([None, None, None, None], [1, 2, 3, 4], None),
    ],
)
def test_bands_are_matched_by_meaning(descriptions, indexes, sensor):
    match = match_by_meaning(descriptions, BANDS)
    assert (match.indexes, match.sensor) == (indexes, sensor)


def test_common_name_tags_win_over_descriptions():
    tags = [{"eo:common_name": n} for n in ("red", "green", "blue", "nir")]
    assert match_by_meaning(["x", "y", "z", "w"], BANDS, tags=tags).indexes == [3, 2, 1, 4]


@pytest.mark.parametrize(
    ("requested", "indexes"),
    [(["nir", "red", "green", "blue"], [4, 3, 2, 1]), (["B5", "B4", "B3", "B2"], [4, 3, 2, 1])],
)
def test_a_request_names_the_bands(requested, indexes):
    assert match_by_meaning(["B11", "B12", "B01", "B09"], BANDS, requested=requested).indexes == indexes


@pytest.mark.parametrize(
    ("descriptions", "message"),
    [
        (["B02", "B03", "B04", "B05"], "unexpected B05; missing B08"),  # zero-padded: Sentinel-2's red edge
        (["B2", "B3", "B4", "B6"], "unexpected B6; missing B08"),
        (["red", "red", "green", "nir"], "do not name each of those once"),
        (["B2", "B3", "B4", "cloud mask"], "not every band is named"),
    ],
)
def test_what_cannot_be_matched_is_refused_clearly(descriptions, message):
    with pytest.raises(BandMismatchError, match=message) as caught:
        match_by_meaning(descriptions, BANDS, name="t.tif")
    assert "'bands' parameter" in str(caught.value)


def test_a_request_that_does_not_name_the_four_bands_is_refused():
    with pytest.raises(BandMismatchError, match="does not name blue, green, red and nir"):
        match_by_meaning([None] * 4, BANDS, requested=["red", "green", "blue", "swir16"])
    with pytest.raises(BandMismatchError, match="the raster has 4"):
        match_by_meaning([None] * 4, BANDS, requested=["red", "green", "blue"])
    with pytest.raises(WrongBandCountError):
        match_by_meaning([None] * 3, BANDS)


def test_only_another_sensor_gets_a_warning():
    landsat = match_by_meaning(["B2", "B3", "B4", "B5"], BANDS)
    assert "Landsat 8/9 OLI" in sensor_warning(landsat, BANDS) and "Sentinel-2" in sensor_warning(landsat, BANDS)
    assert sensor_warning(match_by_meaning(["B02", "B03", "B04", "B08"], BANDS), BANDS) is None
    assert sensor_warning(match_by_meaning([None] * 4, BANDS), BANDS) is None


def _write(path, transform, count=4):
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=16,
        height=16,
        count=count,
        dtype="uint16",
        crs="EPSG:32618",
        transform=transform,
    ) as dst:
        dst.write(np.ones((count, 16, 16), "uint16"))
    return path


@pytest.mark.parametrize(
    "transform",
    [
        rasterio.Affine(0.0, 0.0, 446610.0, 0.0, 0.0, 4179300.0),  # zero pixel size
        from_origin(446610.0, 4179300.0, 40.0, 0.0),  # zero pixel height
        rasterio.Affine(10.0, 10.0, 446610.0, 10.0, 10.0, 4179300.0),  # rows and columns collapse onto a line
    ],
)
def test_a_degenerate_geotransform_is_refused(tmp_path, transform):
    with pytest.raises(InvalidRasterError, match="degenerate geotransform"):
        read_tile(_write(tmp_path / "t.tif", transform), (8, 8), band_names=BANDS)
