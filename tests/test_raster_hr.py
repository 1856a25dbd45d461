"""read_tile's checks for uploads (format, size, band names) and warping HR onto a plan's grid."""

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_bounds, from_origin
from rasterio.warp import transform_bounds

from models.errors import BandMismatchError, InvalidRasterError, TileTooLargeError, WrongBandCountError
from models.geo.raster import match_bands, read_tile, reproject_to_grid

BANDS = ["B02", "B03", "B04", "B08"]
X0, Y1 = 446610.0, 4179300.0  # UTM 18N


def write(path, data, *, crs="EPSG:32618", transform=None, descriptions=None, driver="GTiff", nodata=None):
    count, height, width = data.shape
    transform = transform if transform is not None else from_origin(X0, Y1, 40.0, 40.0)
    with rasterio.open(
        path,
        "w",
        driver=driver,
        width=width,
        height=height,
        count=count,
        dtype=str(data.dtype),
        crs=crs,
        transform=transform,
        nodata=nodata,
    ) as dst:
        dst.write(data)
        for i, d in enumerate(descriptions or [], start=1):
            dst.set_band_description(i, d)
    return path


def bands_image(height=64, width=64):
    return np.stack([np.full((height, width), 1000 * (i + 1), "uint16") for i in range(4)])


def test_bands_named_in_another_order_are_read_in_the_models_order(tmp_path):
    path = write(tmp_path / "t.tif", bands_image(), descriptions=["B08", "B04", "B03", "B02"])
    tile = read_tile(path, (16, 16), band_names=BANDS)
    assert tile.array[:, 0, 0].tolist() == [4000, 3000, 2000, 1000]


def test_wrongly_named_bands_are_listed(tmp_path):
    path = write(tmp_path / "t.tif", bands_image(), descriptions=["B02", "B03", "B04", "B05"])
    with pytest.raises(BandMismatchError, match="unexpected B05; missing B08"):
        read_tile(path, (16, 16), band_names=BANDS, name="tile.tif")
    assert match_bands(["B2", "B3", "B4", "B8"], BANDS) == [1, 2, 3, 4]
    assert match_bands(["Band 1", "Band 2", "Band 3", "Band 4"], BANDS) == [1, 2, 3, 4]
    assert match_bands([None] * 4, BANDS) == [1, 2, 3, 4]
    with pytest.raises(WrongBandCountError, match=r"3 bands; the model expects 4 \(B02, B03, B04, B08\)"):
        match_bands([None] * 3, BANDS)


def test_formats_other_than_geotiff_and_oversized_rasters_are_refused(tmp_path):
    png = write(tmp_path / "t.png", bands_image()[:3].astype("uint8"), driver="PNG")
    with pytest.raises(InvalidRasterError, match="is a PNG file, not a GeoTIFF"):
        read_tile(png, (16, 16), drivers=("GTiff",))
    path = write(tmp_path / "t.tif", bands_image())
    with pytest.raises(TileTooLargeError, match="64x64 px"):
        read_tile(path, (16, 16), max_pixels=1000)


def test_thumbnail_is_native_resolution_up_to_the_cap(tmp_path):
    path = write(tmp_path / "t.tif", bands_image())
    assert read_tile(path, (16, 16), thumbnail_size=256).thumbnail.shape == (4, 64, 64)
    assert read_tile(path, (16, 16), thumbnail_size=32).thumbnail.shape == (4, 32, 32)
    assert read_tile(path, (16, 16)).thumbnail is None


def test_hr_in_another_crs_is_warped_onto_the_plan_grid(tmp_path):
    grid_transform = tuple(from_origin(X0, Y1, 40.0, 40.0))  # a 64x64 px, 2.56 km tile
    tile_bounds = (X0, Y1 - 2560, X0 + 2560, Y1)
    lon0, lat0, lon1, lat1 = transform_bounds("EPSG:32618", "EPSG:4326", *tile_bounds)
    pad = 0.002
    hr = bands_image(300, 300)
    hr_transform = from_bounds(lon0 - pad, lat0 - pad, lon1 + pad, lat1 + pad, 300, 300)
    path = write(tmp_path / "hr.tif", hr, crs="EPSG:4326", transform=hr_transform, descriptions=BANDS)
    out = reproject_to_grid(path, "EPSG:32618", grid_transform, (64, 64), BANDS)
    assert out.valid.all()
    assert np.allclose(out.array[:, 10, 10], [1000, 2000, 3000, 4000])
    # Only the western half: the eastern patches stay NaN.
    west = from_bounds(lon0 - pad, lat0 - pad, (lon0 + lon1) / 2, lat1 + pad, 150, 300)
    half = write(tmp_path / "west.tif", bands_image(300, 150), crs="EPSG:4326", transform=west)
    out = reproject_to_grid(half, "EPSG:32618", grid_transform, (64, 64), BANDS)
    assert out.valid[:, :28].all() and not out.valid[:, 36:].any()
    assert np.isnan(out.array[:, :, 40:]).all()


def _tile_at(lon: float, lat: float) -> tuple[tuple[float, ...], tuple[float, float, float, float]]:
    """A 320 m plan tile in UTM 33N at (lon, lat): its 32 px HR grid transform and its bounds."""
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32633", always_xy=True).transform(lon, lat)
    bounds = (x, y, x + 320, y + 320)
    return tuple(from_bounds(*bounds, 32, 32))[:6], bounds


@pytest.mark.parametrize(
    ("crs", "pixel", "accepted"),
    [
        ("EPSG:3413", 30.0, True),  # polar stereographic, its grid turned about 60° against the tile's
        ("EPSG:3413", 45.0, False),
        ("EPSG:32633", 40.0, True),  # as coarse as the LR pixel: still accepted
        ("EPSG:32633", 80.0, False),
    ],
)
def test_hr_coarser_than_the_lr_pixel_is_refused_measured_where_the_tile_is(tmp_path, crs, pixel, accepted):
    transform, bounds = _tile_at(15, 70)
    x0, y0, x1, y1 = transform_bounds("EPSG:32633", crs, *bounds)
    n = int((max(x1 - x0, y1 - y0) + 400) / pixel) + 1
    data = np.random.default_rng(0).integers(100, 4000, (4, n, n)).astype("uint16")
    path = write(tmp_path / "hr.tif", data, crs=crs, transform=from_origin(x0 - 200, y1 + 200, pixel, pixel))
    args = (str(path), "EPSG:32633", transform, (32, 32), ["B02", "B03", "B04", "B08"])
    if accepted:
        assert reproject_to_grid(*args, coarsest=40.0).valid.all()
    else:
        with pytest.raises(InvalidRasterError, match="coarser than the plan's LR tile"):
            reproject_to_grid(*args, coarsest=40.0)


def test_a_long_thin_strip_of_fine_pixels_is_not_mistaken_for_coarse(tmp_path):
    """The pixel is measured at the tile, not from the whole file's reprojected extent."""
    transform, bounds = _tile_at(15, 60)
    lon0, _, _, lat1 = transform_bounds("EPSG:32633", "EPSG:4326", *bounds)
    dlat, dlon = 30 / 111_320, 30 / (111_320 * np.cos(np.radians(60)))
    data = np.random.default_rng(0).integers(100, 4000, (4, 300, 8000)).astype("uint16")
    write(tmp_path / "strip.tif", data, crs="EPSG:4326", transform=from_origin(lon0 - 0.01, lat1 + 0.05, dlon, dlat))
    image = reproject_to_grid(
        str(tmp_path / "strip.tif"), "EPSG:32633", transform, (32, 32), ["B02", "B03", "B04", "B08"], coarsest=40.0
    )
    assert image.valid.all()
