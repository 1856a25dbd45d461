"""Chip-folder dataset (fixtures generated here) and the Sentinel-2 chip builder (real scene)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from models.datasets import sentinel2_chips as s2
from models.datasets.chips import load_chip_splits, load_chips, scan_chip_folder
from models.errors import DatasetNotFoundError, InvalidDatasetError, InvalidRasterError
from models.geo.raster import write_geotiff

ORIGIN = (435730.0, 4179460.0)
ASSET = Path(__file__).resolve().parents[1] / "models" / "assets" / "sample_lr_tile.tif"
SCENE_ASSET = ASSET.with_name("sample_lr_scene.tif")


def chip(
    root: Path,
    rel: str,
    data: np.ndarray,
    names: tuple[str, ...] | None = None,
    nodata: float | None = None,
) -> Path:
    """Write one chip at root/rel; band names default to B1, B2, ..."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    names = names or tuple(f"B{i}" for i in range(1, data.shape[0] + 1))
    return write_geotiff(path, data, "EPSG:32618", from_origin(*ORIGIN, 10, 10), names, nodata)


def constant(value: float, bands: int = 2, size: int = 8, dtype: str = "uint16") -> np.ndarray:
    """A chip whose band b holds value + b, so a read-back value tells chip and band apart."""
    return (np.arange(bands, dtype="float64")[:, None, None] + value + np.zeros((bands, size, size))).astype(dtype)


def two_class_folder(root: Path, per_class: int = 4) -> Path:
    # "water" written first: the loader must still sort classes by name.
    for label, name in ((1, "water"), (0, "forest")):
        for i in range(per_class):
            chip(root, f"{name}/{i:02d}.tif", constant(100 * label + 10 * i))
    return root


# --- the chip-folder loader ---------------------------------------------------


def test_folder_loads_sorted_classes_raw_values_and_band_names(tmp_path):
    splits = load_chip_splits(two_class_folder(tmp_path), lr_factor=2)
    train = splits.train
    assert train.class_names == ["forest", "water"]
    assert train.bands == ["B1", "B2"] and train.lr_factor == 2 and train.lr_size == (4, 4)
    assert train.hr.dtype.is_floating_point and train.hr.shape[1:] == (2, 8, 8)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (4, 2, 2)
    for image_set in (splits.train, splits.val, splits.test):
        first_band = image_set.hr[:, 0, 0, 0]
        assert ((first_band >= 100).long() == image_set.labels).all()  # water chips are >= 100
        assert (image_set.hr[:, 1] == image_set.hr[:, 0] + 1).all()  # raw units, band order kept
        assert image_set.info["split_source"] == "random(seed=0)"


def test_random_split_is_seeded_and_keeps_every_class_in_every_split(tmp_path):
    root = two_class_folder(tmp_path, per_class=10)

    def assignment(seed: int) -> list[list[float]]:
        s = load_chip_splits(root, seed=seed)
        return [sorted(x.hr[:, 0, 0, 0].tolist()) for x in (s.train, s.val, s.test)]

    assert assignment(0) == assignment(0)
    assert assignment(0) != assignment(1)
    for values in assignment(0):
        assert any(v < 100 for v in values) and any(v >= 100 for v in values)


def test_bands_are_selected_by_index_or_by_description(tmp_path):
    chip(tmp_path, "a/x.tif", constant(10, bands=3), names=("red", "green", "nir"))
    chips = [("a/x.tif", 0)]
    by_index = load_chips(tmp_path, chips, ["a"], bands=[3, 1])
    by_name = load_chips(tmp_path, chips, ["a"], bands=["nir", "red"])
    assert by_index.bands == by_name.bands == ["nir", "red"]
    assert by_index.hr[0, :, 0, 0].tolist() == by_name.hr[0, :, 0, 0].tolist() == [12.0, 10.0]
    with pytest.raises(InvalidRasterError, match="no band named 'swir'"):
        load_chips(tmp_path, chips, ["a"], bands=["swir"])
    with pytest.raises(InvalidRasterError, match="band 4 requested"):
        load_chips(tmp_path, chips, ["a"], bands=[4])


def test_nodata_pixels_are_filled_with_the_chips_band_mean(tmp_path):
    data = np.zeros((2, 4, 4), dtype="int16")
    data[0] = [[1, 2, 3, 4]] * 4  # valid mean of band 0 over the kept columns 0..2: 2
    data[1] = 50
    data[:, :, 3] = -9999  # the whole last column is nodata in both bands
    chip(tmp_path, "a/x.tif", data, nodata=-9999)
    image_set = load_chips(tmp_path, [("a/x.tif", 0)], ["a"], lr_factor=2)
    hr = image_set.hr[0].numpy()
    assert np.array_equal(hr[0, :, 3], [2.0] * 4) and np.array_equal(hr[0, :, :3], data[0, :, :3])
    assert np.all(hr[1] == 50.0)
    assert image_set.info["filled_nodata_pixels"] == 4


def test_all_nodata_chips_are_skipped_counted_and_logged(tmp_path, caplog):
    chip(tmp_path, "a/good.tif", constant(5), nodata=0)
    chip(tmp_path, "a/empty.tif", np.zeros((2, 8, 8), "uint16"), nodata=0)
    chip(tmp_path, "a/half.tif", np.stack([np.full((8, 8), 7), np.zeros((8, 8))]).astype("uint16"), nodata=0)
    chips = [("a/empty.tif", 0), ("a/good.tif", 0), ("a/half.tif", 0)]
    with caplog.at_level(logging.WARNING, logger="models.datasets.chips"):
        image_set = load_chips(tmp_path, chips, ["a"])
    assert len(image_set) == 1 and image_set.hr[0, 0, 0, 0] == 5.0
    assert image_set.info["skipped_nodata"] == ["a/empty.tif", "a/half.tif"]
    assert "2 of 3 chips" in caplog.text and "a/empty.tif" in caplog.text


def test_chips_of_another_size_or_band_count_are_refused_by_name(tmp_path):
    chip(tmp_path, "a/ok.tif", constant(1, size=8))
    chip(tmp_path, "a/small.tif", constant(1, size=4))
    chip(tmp_path, "b/three.tif", constant(1, bands=3))
    with pytest.raises(InvalidDatasetError, match=r"small\.tif is 4x4 px but the other chips are 8x8"):
        load_chips(tmp_path, [("a/ok.tif", 0), ("a/small.tif", 0)], ["a"])
    with pytest.raises(InvalidDatasetError, match=r"three\.tif has 3 bands"):
        load_chips(tmp_path, [("a/ok.tif", 0), ("b/three.tif", 1)], ["a", "b"])


def test_a_missing_root_names_the_folder_searched(tmp_path):
    missing = tmp_path / "no_such_dataset"
    with pytest.raises(DatasetNotFoundError, match="no_such_dataset") as info:
        load_chip_splits(missing)
    assert isinstance(info.value, FileNotFoundError)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="no class folders"):
        scan_chip_folder(tmp_path / "empty")


def test_splits_json_decides_the_splits_and_unlisted_chips_are_left_out(tmp_path):
    root = two_class_folder(tmp_path)
    listing = {"train": ["forest/00.tif", "water/00.tif"], "val": ["water/01.tif"], "test": ["forest/03.tif"]}
    (root / "splits.json").write_text(json.dumps(listing))
    splits = load_chip_splits(root, seed=123)
    assert sorted(splits.train.hr[:, 0, 0, 0].tolist()) == [0.0, 100.0]
    assert splits.val.hr[:, 0, 0, 0].tolist() == [110.0] and splits.val.labels.tolist() == [1]
    assert splits.test.hr[:, 0, 0, 0].tolist() == [30.0] and splits.test.labels.tolist() == [0]
    assert splits.test.info["split_source"] == "splits.json"


def test_splits_json_with_unknown_or_repeated_chips_is_refused(tmp_path):
    root = two_class_folder(tmp_path)
    (root / "splits.json").write_text(json.dumps({"train": ["water/99.tif"], "val": [], "test": []}))
    with pytest.raises(DatasetNotFoundError, match="water/99.tif"):
        load_chip_splits(root)
    (root / "splits.json").write_text(json.dumps({"train": ["water/00.tif"], "val": ["water/00.tif"], "test": []}))
    with pytest.raises(InvalidDatasetError, match="both train and val"):
        load_chip_splits(root)


# --- the Sentinel-2 chip rules ----------------------------------------------------


def test_fine_pixels_are_features_at_most_two_pixels_wide():
    classes = np.full((12, 12), s2.VEGETATION, dtype=np.int8)
    classes[:, 2] = s2.BUILT_BARE  # a 1 px lane
    classes[:, 6:9] = s2.WATER  # a 3 px creek: wide enough to hold a 3x3 square
    fine = s2.fine_pixels(classes)
    assert fine[:, 2].all() and fine.sum() == 12


def test_label_rules_on_synthetic_chips():
    def bands(b03: float, b04: float, b08: float) -> np.ndarray:
        return np.array([1000.0, b03, b04, b08])[:, None, None] * np.ones((1, 16, 16))

    water, forest, bare = bands(1200, 800, 400), bands(900, 500, 3000), bands(1100, 1300, 1600)
    assert s2.label_chip(water) == "water"  # NDWI 0.5
    assert s2.label_chip(forest) == "vegetation"  # NDVI 0.71
    assert s2.label_chip(bare) == "built_bare"  # NDVI 0.10, NDWI -0.19
    mostly_bare = bare.copy()
    mostly_bare[:, :, :7] = forest[:, :, :7]  # 7 of 16 columns vegetation: bare dominates
    assert s2.label_chip(mostly_bare) == "built_bare"
    hedged = forest.copy()
    hedged[:, :, ::4] = bare[:, :, ::4]  # 1 px hedgerow lanes every 4 px: 25 % fine pixels
    assert s2.label_chip(hedged) == "fine_mosaic"


def test_strips_are_test_val_train_from_the_top_with_gaps():
    rows = s2.plan_strips(60)
    assert rows == ["test"] * 9 + [None] + ["val"] * 9 + [None] + ["train"] * 40
    with pytest.raises(InvalidDatasetError, match="too few"):
        s2.plan_strips(4)


# --- the builder on synthetic band files ---------------------------------------


def test_builder_skips_and_counts_chips_with_nodata(tmp_path):
    scene = tmp_path / "scene"
    scene.mkdir()
    values = {"B02": 1000, "B03": 900, "B04": 500, "B08": 3000}  # vegetation everywhere
    for band, value in values.items():
        data = np.full((1, 96, 32), value, dtype="uint16")
        data[0, 80:, :5] = 0  # nodata in the bottom-left chip, a train chip
        write_geotiff(scene / f"s2_{band}.jp2", data, "EPSG:32618", from_origin(*ORIGIN, 10, 10), [band])
    report = s2.build_chips(tmp_path / "out", chip_size=16, folder=scene)
    assert report.skipped_nodata == ["s2_r0080_c0000.tif"]
    assert report.counts == {"test": {"vegetation": 2}, "val": {"vegetation": 2}, "train": {"vegetation": 3}}
    assert report.gap_chips == 4


# --- the builder on the real scene (a small window) -------------------------------

WINDOW = (0, 1024, 256, 320)  # 8 x 10 chips: 1 test row, gap, 1 val row, gap, 4 train rows


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("s2") / "chips"
    assert s2.main(["--out", str(out), "--window", *map(str, WINDOW)]) == 0
    return out


def chip_files(root: Path) -> dict[str, list[Path]]:
    listing = json.loads((root / "splits.json").read_text())
    return {split: [root / rel for rel in rels] for split, rels in listing.items()}


def test_built_chips_are_georeferenced_4_band_uint16(built):
    files = chip_files(built)
    assert {k: len(v) for k, v in files.items()} == {"train": 40, "val": 10, "test": 10}
    with rasterio.open(files["val"][0]) as ds:
        row, col = (int(part[1:]) for part in ds.name.rsplit("/", 1)[1][3:-4].split("_"))
        assert (ds.count, ds.width, ds.height, ds.dtypes[0]) == (4, 32, 32, "uint16")
        assert ds.crs.to_epsg() == 32618 and ds.descriptions == s2.BANDS
        assert ds.transform == from_origin(ORIGIN[0] + 10 * col, ORIGIN[1] - 10 * row, 10, 10)
    assert (row, col) == (64, 1024)  # first val chip: after the test row and the gap row


def test_built_chip_labels_follow_the_index_rules(built):
    for path in sorted(built.glob("*/*.tif")):
        with rasterio.open(path) as ds:
            b02, b03, b04, b08 = ds.read().astype(float)
        label = path.parent.name
        water = (b03 - b08) / (b03 + b08) > 0
        vegetation = ~water & ((b08 - b04) / (b08 + b04) > 0.4)
        counts = {"water": water.sum(), "vegetation": vegetation.sum(), "built_bare": (~water & ~vegetation).sum()}
        fine_share = s2.fine_pixels(s2.pixel_classes(np.stack([b02, b03, b04, b08]))).mean()
        if label == "fine_mosaic":
            assert fine_share >= 0.15, path
        else:
            assert fine_share < 0.15 and counts[label] == max(counts.values()), path


def test_no_train_chip_touches_a_val_or_test_chip(built):
    rows = {}
    for split, paths in chip_files(built).items():
        tops = set()
        for path in paths:
            with rasterio.open(path) as ds:
                tops.add(round((ORIGIN[1] - ds.transform.f) / 10))
        rows[split] = tops
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        gap = min(abs(r1 - r2) for r1 in rows[a] for r2 in rows[b])
        assert gap >= 2 * 32, (a, b, gap)  # at least one whole chip row in between


def test_the_chip_loader_reads_the_built_folder(built):
    splits = load_chip_splits(built, bands=["B04", "B03", "B02"])
    assert splits.train.class_names == list(s2.CLASS_NAMES)
    assert splits.train.bands == ["B04", "B03", "B02"] and splits.train.lr_size == (8, 8)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (40, 10, 10)


def test_building_into_a_full_folder_needs_overwrite(built):
    with pytest.raises(InvalidDatasetError, match="overwrite"):
        s2.build_chips(built, window=WINDOW)


# --- the sample LR tile ----------------------------------------------------------


def test_sample_lr_tile_is_a_4x_area_average_of_the_test_strip(tmp_path):
    path = s2.write_sample_lr_tile(tmp_path / "lr.tif")
    with rasterio.open(path) as ds:
        assert (ds.count, ds.width, ds.height, ds.dtypes[0]) == (4, 8, 8, "uint16")
        assert ds.res == (40.0, 40.0) and ds.crs.to_epsg() == 32618
        assert ds.descriptions == s2.BANDS
        row, col = s2.SAMPLE_ORIGIN
        assert (ds.transform.c, ds.transform.f) == (ORIGIN[0] + 10 * col, ORIGIN[1] - 10 * row)
        lr = ds.read().astype(float)
    with rasterio.open(s2.band_paths()[3]) as nir:  # B08
        hr = nir.read(1, window=((row, row + 32), (col, col + 32))).astype(float)
    expected = hr.reshape(8, 4, 8, 4).mean(axis=(1, 3))
    assert np.abs(lr[3] - expected).max() <= 0.5  # rounded back to uint16


def test_the_committed_sample_tile_is_what_the_builder_writes(tmp_path):
    fresh = s2.write_sample_lr_tile(tmp_path / "lr.tif")
    with rasterio.open(fresh) as a, rasterio.open(ASSET) as b:
        assert np.array_equal(a.read(), b.read()) and a.transform == b.transform
    assert ASSET.stat().st_size < 64_000


def test_sample_window_outside_the_test_strip_is_refused(tmp_path):
    with pytest.raises(InvalidDatasetError, match="test strip"):
        s2.write_sample_lr_tile(tmp_path / "lr.tif", origin=(600, 0))


def test_the_committed_sample_scene_is_what_the_builder_writes(tmp_path):
    """64 x 64 px at 40 m (8 x 8 model tiles) from the held-out test strip, written by the CLI."""
    assert s2.main(["--sample-lr-scene", str(tmp_path / "scene.tif")]) == 0
    with rasterio.open(tmp_path / "scene.tif") as a, rasterio.open(SCENE_ASSET) as b:
        assert np.array_equal(a.read(), b.read()) and a.transform == b.transform and a.crs == b.crs
        assert (b.count, b.width, b.height, b.dtypes[0], b.res) == (4, 64, 64, "uint16", (40.0, 40.0))
        assert b.descriptions == s2.BANDS
        row, col = s2.SCENE_SAMPLE_ORIGIN
        assert (b.transform.c, b.transform.f) == (ORIGIN[0] + 10 * col, ORIGIN[1] - 10 * row)
        lr = b.read(4).astype(float)
    with rasterio.open(s2.band_paths()[3]) as nir:  # B08, the 4x area average of the 10 m window
        hr = nir.read(1, window=((row, row + 256), (col, col + 256))).astype(float)
    assert np.abs(lr - hr.reshape(64, 4, 64, 4).mean(axis=(1, 3))).max() <= 0.5
    strips = s2.plan_strips(1947 // 32)  # the scene has 1947 rows of 10 m pixels
    assert all(strips[r] == "test" for r in range(row // 32, (row + 256) // 32))  # held out from training
    assert SCENE_ASSET.stat().st_size < 64_000
