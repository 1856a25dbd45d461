"""A folder of GeoTIFF chips, one sub-folder per class (EuroSAT / UC Merced layout).

    root/<class_name>/*.tif        any band count, all chips the same size
    root/splits.json               optional: {"train": [...], "val": [...], "test": [...]}
                                   paths relative to root, e.g. "water/r0000_c0064.tif"

Class names are the sub-folder names, sorted, so label ids do not depend on
the order the file system lists them in. Without ``splits.json`` the chips are
split at random per class (seeded), so every class appears in every split.

Nodata pixels (the file's nodata value, internal mask or NaN) are filled with
the chip's mean of that band's valid pixels. A chip with a selected band that
holds no valid pixel cannot be filled; it is skipped, logged, and listed in
``ImageSet.info["skipped_nodata"]`` so that a dataset losing chips never goes
unnoticed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from models.datasets.base import ImageSet, Splits
from models.errors import DatasetNotFoundError, InvalidDatasetError
from models.geo.raster import fill_with_band_mean, read_bands

log = logging.getLogger(__name__)

SPLITS_FILE = "splits.json"
SPLIT_NAMES = ("train", "val", "test")
CHIP_SUFFIXES = (".tif", ".tiff")


def scan_chip_folder(root: str | Path) -> tuple[list[str], list[tuple[str, int]]]:
    """Class names (sorted sub-folders) and every chip as (path relative to root, label)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(
            f"chip folder not found: searched {root.resolve()}; expected root/<class_name>/*.tif"
        )
    class_names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_names:
        raise DatasetNotFoundError(f"no class folders in {root.resolve()}; expected root/<class_name>/*.tif")
    chips = [
        (f"{name}/{path.name}", label)
        for label, name in enumerate(class_names)
        for path in sorted((root / name).iterdir())
        if path.is_file() and path.suffix.lower() in CHIP_SUFFIXES
    ]
    if not chips:
        raise DatasetNotFoundError(f"no .tif chips under the class folders of {root.resolve()}")
    return class_names, chips


def load_chips(
    root: str | Path,
    chips: Sequence[tuple[str, int]],
    class_names: Sequence[str],
    lr_factor: int = 4,
    bands: Sequence[int | str] | None = None,
    shape: tuple[int, int, int] | None = None,
) -> ImageSet:
    """Read the given chips into an ImageSet of float32 raw band units.

    ``shape`` (bands, h, w) is what every chip must have; by default the first
    chip read sets it. ``bands`` selects by 1-based index or band description.
    """
    root = Path(root)
    if lr_factor < 1:
        raise InvalidDatasetError(f"lr_factor must be a positive integer, got {lr_factor}")
    hr: np.ndarray | None = None
    band_names: list[str] | None = None
    labels: list[int] = []
    skipped: list[str] = []
    filled_pixels = 0
    for rel, label in chips:
        band_array = read_bands(root / rel, bands)
        data = band_array.array
        if shape is None:
            shape = _check_shape(data.shape, lr_factor, rel)
        if data.shape[0] != shape[0]:
            raise InvalidDatasetError(
                f"{root / rel} has {data.shape[0]} bands (after selection) but the other chips "
                f"have {shape[0]}; every chip must have the same bands"
            )
        if data.shape[1:] != shape[1:]:
            raise InvalidDatasetError(
                f"{root / rel} is {data.shape[1]}x{data.shape[2]} px but the other chips are "
                f"{shape[1]}x{shape[2]} px; every chip must have the same size"
            )
        if band_names is None:
            band_names = band_array.band_names
        elif band_array.band_names != band_names:
            raise InvalidDatasetError(f"{root / rel} has bands {band_array.band_names}, the other chips {band_names}")
        invalid = np.ma.getmaskarray(data)
        if invalid.all(axis=(1, 2)).any():
            skipped.append(rel)  # nothing to fill a band from
            continue
        if hr is None:
            hr = np.empty((len(chips), *shape), dtype=np.float32)
        hr[len(labels)] = fill_with_band_mean(data)
        filled_pixels += int(invalid.any(axis=0).sum())
        labels.append(label)
    if skipped:
        shown = ", ".join(skipped[:10]) + (" ..." if len(skipped) > 10 else "")
        log.warning(
            "%d of %d chips under %s hold only nodata in a band and were skipped: %s",
            len(skipped), len(chips), root, shown,
        )  # fmt: skip
    if shape is None:
        raise InvalidDatasetError(f"no chips to read under {root}; the shape of an empty split is unknown")
    images = hr[: len(labels)] if hr is not None else np.empty((0, *shape), dtype=np.float32)
    return ImageSet(
        hr=torch.from_numpy(np.ascontiguousarray(images)),
        labels=torch.tensor(labels, dtype=torch.int64),
        class_names=list(class_names),
        bands=band_names or [f"band_{i}" for i in range(1, shape[0] + 1)],
        lr_factor=lr_factor,
        info={
            "root": str(root),
            "chips_listed": len(chips),
            "skipped_nodata": skipped,
            "filled_nodata_pixels": filled_pixels,
        },
    )


def _check_shape(shape: tuple[int, ...], lr_factor: int, rel: str) -> tuple[int, int, int]:
    bands, height, width = shape
    if height % lr_factor or width % lr_factor:
        raise InvalidDatasetError(f"chips of {height}x{width} px (e.g. {rel}) do not divide by lr_factor {lr_factor}")
    return bands, height, width


def read_splits_file(path: Path, chips: Sequence[tuple[str, int]]) -> dict[str, list[tuple[str, int]]]:
    """Chips per split as listed in ``splits.json``; every listed path must exist exactly once."""
    try:
        listing = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InvalidDatasetError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(listing, dict) or set(listing) != set(SPLIT_NAMES):
        raise InvalidDatasetError(f"{path} must hold exactly the keys {list(SPLIT_NAMES)}")
    label_of = dict(chips)
    seen: dict[str, str] = {}
    out: dict[str, list[tuple[str, int]]] = {}
    for split in SPLIT_NAMES:
        out[split] = []
        for rel in listing[split]:
            rel = Path(rel).as_posix()
            if rel in seen:
                raise InvalidDatasetError(f"{path}: {rel} is listed in both {seen[rel]} and {split}")
            if rel not in label_of:
                raise DatasetNotFoundError(
                    f"{path} lists {rel}, which is not a chip under a class folder of {path.parent}"
                )
            seen[rel] = split
            out[split].append((rel, label_of[rel]))
    return out


def random_splits(
    chips: Sequence[tuple[str, int]],
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> dict[str, list[tuple[str, int]]]:
    """Seeded split per class, so small classes still reach val and test."""
    if len(fractions) != 3 or min(fractions) < 0 or not np.isclose(sum(fractions), 1.0):
        raise InvalidDatasetError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    out: dict[str, list[tuple[str, int]]] = {split: [] for split in SPLIT_NAMES}
    for label in sorted({lab for _, lab in chips}):
        members = [chip for chip in chips if chip[1] == label]
        order = rng.permutation(len(members))
        n_val = round(len(members) * fractions[1])
        n_test = round(len(members) * fractions[2])
        parts = {
            "val": order[:n_val],
            "test": order[n_val : n_val + n_test],
            "train": order[n_val + n_test :],
        }
        for split, idx in parts.items():
            out[split].extend(members[i] for i in sorted(idx))
    return out


def load_chip_splits(
    root: str | Path,
    lr_factor: int = 4,
    bands: Sequence[int | str] | None = None,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
) -> Splits:
    """Train / val / test ImageSets from a chip folder; ``splits.json`` wins over the random split."""
    root = Path(root)
    class_names, chips = scan_chip_folder(root)
    splits_path = root / SPLITS_FILE
    if splits_path.is_file():
        assignment, source = read_splits_file(splits_path, chips), SPLITS_FILE
    else:
        assignment, source = random_splits(chips, fractions, seed), f"random(seed={seed})"
    sets: dict[str, ImageSet] = {}
    shape: tuple[int, int, int] | None = None
    # Non-empty splits first, so an empty one can borrow their chip shape.
    for split in sorted(SPLIT_NAMES, key=lambda s: not assignment[s]):
        image_set = load_chips(root, assignment[split], class_names, lr_factor, bands, shape)
        shape = (len(image_set.bands), *image_set.hr_size)
        image_set.info.update(split=split, split_source=source)
        sets[split] = image_set
    if len({tuple(s.bands) for s in sets.values()}) > 1:
        raise InvalidDatasetError(
            f"the splits of {root} have different bands: " + "; ".join(f"{name} {s.bands}" for name, s in sets.items())
        )
    return Splits(sets["train"], sets["val"], sets["test"])
