"""Fashion-MNIST (Debian ``dataset-fashion-mnist``) and the Scattered Fashion-MNIST benchmark.

Benchmark A follows the paper's CIFAR setting: 28x28 items padded to 32x32 HR,
LR 8x8 by 4x area averaging. Benchmark B ("where to zoom") puts one item at a
uniformly random place on a 64x64 canvas with small crops of other items as
clutter; LR is 16x16.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch

from models.datasets.base import ImageSet, Splits
from models.errors import DatasetNotFoundError

DEFAULT_ROOT = Path(os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
CLASS_NAMES = [
    "t-shirt/top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
]  # fmt: skip
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_official(root: Path = DEFAULT_ROOT) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The official train (60k) and test (10k) splits as (images (N, 28, 28) uint8, labels)."""
    out = {}
    for split, (images, labels) in FILES.items():
        paths = [root / images, root / labels]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise DatasetNotFoundError(
                f"Fashion-MNIST not found: missing {', '.join(missing)}. "
                "Install it with `apt-get install dataset-fashion-mnist` or set FASHION_MNIST_DIR."
            )
        out[split] = (_read_idx(paths[0]), _read_idx(paths[1]).astype(np.int64))
    return out


def _split_train(n: int, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    # Small copies of the data (test fixtures) keep 10 % for validation instead of 5k.
    val_size = min(val_size, n // 10)
    order = np.random.default_rng(seed).permutation(n)
    return order[val_size:], order[:val_size]


def _image_set(images: np.ndarray, labels: np.ndarray, lr_factor: int, **extra: np.ndarray) -> ImageSet:
    return ImageSet(
        hr=torch.from_numpy(np.ascontiguousarray(images[:, None])),  # uint8 keeps 70k images small
        labels=torch.from_numpy(labels),
        class_names=list(CLASS_NAMES),
        bands=["grey"],
        lr_factor=lr_factor,
        extra={k: torch.from_numpy(v) for k, v in extra.items()},
    )


def load_fashion_mnist(root: Path = DEFAULT_ROOT, val_size: int = 5000, seed: int = 0) -> Splits:
    """Benchmark A: 32x32 HR (zero-padded), LR 8x8; 55k / 5k / 10k."""
    data = load_official(root)
    pad = ((0, 0), (2, 2), (2, 2))
    train_x, train_y = np.pad(data["train"][0], pad), data["train"][1]
    test_x, test_y = np.pad(data["test"][0], pad), data["test"][1]
    tr, va = _split_train(len(train_x), val_size, seed)
    return Splits(
        _image_set(train_x[tr], train_y[tr], 4),
        _image_set(train_x[va], train_y[va], 4),
        _image_set(test_x, test_y, 4),
    )


def scatter(
    items: np.ndarray,
    rng: np.random.Generator,
    canvas: int = 64,
    clutter: tuple[int, int] = (2, 4),
    clutter_size: tuple[int, int] = (8, 12),
) -> tuple[np.ndarray, np.ndarray]:
    """Place each item at a uniformly random spot on a blank canvas with clutter crops.

    Clutter crops come from other items of the same split, so they look like
    pieces of real garments; the item is drawn on top (pixel-wise max) so it is
    never hidden. Returns canvases (N, canvas, canvas) and item masks (N, canvas, canvas).
    """
    n, size = items.shape[0], items.shape[1]
    out = np.zeros((n, canvas, canvas), dtype=np.uint8)
    masks = np.zeros((n, canvas, canvas), dtype=bool)
    ys = rng.integers(0, canvas - size + 1, n)
    xs = rng.integers(0, canvas - size + 1, n)
    counts = rng.integers(clutter[0], clutter[1] + 1, n)
    for i in range(n):
        for _ in range(counts[i]):
            c = int(rng.integers(clutter_size[0], clutter_size[1] + 1))
            src = items[rng.integers(0, n)]
            sy, sx = rng.integers(0, size - c + 1, 2)
            dy, dx = rng.integers(0, canvas - c + 1, 2)
            region = out[i, dy : dy + c, dx : dx + c]
            np.maximum(region, src[sy : sy + c, sx : sx + c], out=region)
        y, x = ys[i], xs[i]
        region = out[i, y : y + size, x : x + size]
        np.maximum(region, items[i], out=region)
        masks[i, y : y + size, x : x + size] = items[i] > 0
    return out, masks


def load_scattered_fashion_mnist(root: Path = DEFAULT_ROOT, val_size: int = 5000, seed: int = 0) -> Splits:
    """Benchmark B: 64x64 HR canvases, LR 16x16; deterministic from the official splits and ``seed``."""
    data = load_official(root)
    tr, va = _split_train(len(data["train"][0]), val_size, seed)
    sets = []
    for k, (images, labels) in enumerate(
        [(data["train"][0][tr], data["train"][1][tr]),
         (data["train"][0][va], data["train"][1][va]),
         data["test"]]
    ):  # fmt: skip
        canvases, masks = scatter(images, np.random.default_rng([seed, k]))
        sets.append(_image_set(canvases, labels, 4, object_mask=masks))
    return Splits(*sets)


BENCHMARKS = {
    "fashion_mnist": load_fashion_mnist,
    "scattered_fashion_mnist": load_scattered_fashion_mnist,
}
