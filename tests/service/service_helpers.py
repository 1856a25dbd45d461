"""Constants and builders shared by the service tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import IO

import numpy as np
import torch
from rasterio.io import MemoryFile
from rasterio.transform import from_bounds, from_origin

from models.nn.checkpoint import ModelBundle, build_bundle
from service.settings import Settings

REPO = Path(__file__).resolve().parents[2]
REDIS_ENV = "PATCHDROP_TEST_REDIS_URL"
BANDS = ["B02", "B03", "B04", "B08"]
BUY = (5, 6, 9)  # the test policy's patches (an L of three patches)
X0, Y1, PIXEL, SIZE = 446610.0, 4179300.0, 40.0, 64  # like the bundled sample tile
TILE_BOUNDS = (X0, Y1 - SIZE * PIXEL, X0 + SIZE * PIXEL, Y1)


TEST_VALUE_MODEL = {"feature": "policy_count", "edges": [], "p_lr": [0.8], "p_hr": [0.95], "counts": [100]}


def random_bundle() -> ModelBundle:
    """A tiny random bundle whose policy always buys ``BUY``: plans are deterministic."""
    torch.manual_seed(0)
    bundle = build_bundle(
        class_names=["water", "cropland", "forest"],
        bands=BANDS,
        band_mean=[500.0, 700.0, 600.0, 2200.0],
        band_std=[200.0, 250.0, 300.0, 900.0],
        hr_size=(64, 64),
        lr_size=(16, 16),
        policy_width=8,
        classifier_width=8,
        model_id="test-random",
        # A calibrated value model (one bin: every tile 80 % right from LR, 95 % with HR), so
        # plans and estimates carry a spend-aware order.
        value_model=TEST_VALUE_MODEL,
        value_model_policy=TEST_VALUE_MODEL,
    )
    with torch.no_grad():
        head = bundle.policy.head
        head.weight.zero_()
        head.bias.copy_(torch.tensor([4.0 if i in BUY else -4.0 for i in range(head.out_features)]))
    return bundle.eval()


def geotiff_bytes(
    data: np.ndarray,
    *,
    crs: str | None = "EPSG:32618",
    transform=None,
    descriptions: list[str] | None = None,
    nodata: float | None = None,
    driver: str = "GTiff",
    **creation,
) -> bytes:
    """A GeoTIFF in memory (10 m pixels at (X0, Y1) in UTM 18N unless told); ``creation``: GDAL options (tiled...)."""
    count, height, width = data.shape
    profile = {"driver": driver, "width": width, "height": height, "count": count, "dtype": str(data.dtype), **creation}
    if crs is not None:
        profile["crs"] = crs
        profile["transform"] = transform if transform is not None else from_origin(X0, Y1, PIXEL, PIXEL)
    if nodata is not None:
        profile["nodata"] = nodata
    with MemoryFile() as memfile:
        with memfile.open(**profile) as dst:
            dst.write(data)
            for i, d in enumerate(descriptions or [], start=1):
                dst.set_band_description(i, d)
        return memfile.read()


def lr_array(bands: int = 4, size: int = SIZE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(200, 3000, (bands, size, size)).astype("uint16")


def hr_over(
    bounds: tuple[float, float, float, float],
    *,
    crs: str = "EPSG:32618",
    px: int = 128,
    bands: int = 4,
    descriptions: list[str] | None = None,
) -> bytes:
    """HR GeoTIFF bytes covering ``bounds`` (in ``crs``) with px x px pixels."""
    data = np.random.default_rng(1).integers(100, 4000, (bands, px, px)).astype("uint16")
    return geotiff_bytes(data, crs=crs, transform=from_bounds(*bounds, px, px), descriptions=descriptions)


def patch_bounds(pid: int, rows: int = 4, cols: int = 4) -> tuple[float, float, float, float]:
    r, c = divmod(pid, cols)
    pw, ph = (TILE_BOUNDS[2] - X0) / cols, (Y1 - TILE_BOUNDS[1]) / rows
    return (X0 + c * pw, Y1 - (r + 1) * ph, X0 + (c + 1) * pw, Y1 - r * ph)


def stop_process(process: subprocess.Popen) -> None:
    """Terminate a server or worker started by a test; kill it if it has not exited within 15 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_celery_worker(
    redis_url: str, queue: str, models: dict[str, str], out: IO, name: str, **env: str
) -> subprocess.Popen:
    """A real ``celery worker --pool=solo`` on ``queue``, CPU, one torch thread; ``env`` adds PATCHDROP_* settings."""
    environ = {
        **os.environ,
        "PATCHDROP_REDIS_URL": redis_url,
        "PATCHDROP_QUEUE": queue,
        "PATCHDROP_MODELS": json.dumps(models),
        "PATCHDROP_DEVICE": "cpu",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        **env,
    }
    cmd = [
        sys.executable, "-m", "celery", "-A", "worker.app", "worker", "--pool=solo", "--loglevel=INFO",
        "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"{name}@%h",
    ]  # fmt: skip
    return subprocess.Popen(cmd, cwd=REPO, env=environ, stdout=out, stderr=subprocess.STDOUT)


def embedded_settings(folder: Path, bundle: Path | str, **overrides) -> Settings:
    """An embedded-mode app's settings (plans in ``folder``, ``bundle`` the default model, CPU, nothing preloaded)."""
    base = {
        "redis_url": None,
        "db_path": Path(folder) / "plans.sqlite3",
        "models": {"default": str(bundle)},
        "preload_models": False,
        "device": "cpu",
    }
    return Settings(**{**base, **overrides})
