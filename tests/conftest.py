from __future__ import annotations

import builtins
import functools
import gc
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin


def _one_ast_at_a_time(build):
    lock = threading.RLock()

    @functools.wraps(build)
    def call(*args, **kwargs):
        with lock:
            collecting = gc.isenabled()
            gc.disable()  # no finalizer may run (and format a traceback) inside the AST constructor
            try:
                return build(*args, **kwargs)
            finally:
                if collecting:
                    gc.enable()

    return call


# CPython 3.11 keeps the AST constructor's recursion counter per interpreter (gh-106905): an AST
# built while another is being built, by another thread or by a finalizer that the garbage
# collector runs inside the first (pytest's unraisable-exception hook formats a traceback, and
# 3.11's traceback module parses source lines), fails with a spurious "AST constructor recursion
# depth mismatch". Every AST is built by ``compile`` (``ast.parse`` calls it), so for the tests it
# is built one at a time with the collector paused; the service imports matplotlib, its other
# user, at start-up.
if sys.version_info < (3, 12):
    builtins.compile = _one_ast_at_a_time(builtins.compile)

# The only reasons a test may be skipped in CI (CI=true): hardware or an OS feature the machine
# lacks. A missing service (Redis, a worker) is a broken CI machine, so it fails the run.
ALLOWED_CI_SKIPS = ("needs a CUDA GPU", "needs an OS feature")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI", "").lower() != "true" or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if not reason.removeprefix("Skipped: ").startswith(ALLOWED_CI_SKIPS):
        report.outcome = "failed"
        report.longrepr = f"CI=true allows skips only for {ALLOWED_CI_SKIPS}; this one was: {reason}"


def write_geotiff(
    path: Path,
    data: np.ndarray,
    *,
    crs: str | None = "EPSG:32618",
    origin: tuple[float, float] = (435730.0, 4179460.0),
    pixel_size: float = 40.0,
    nodata: float | None = None,
) -> Path:
    """A GeoTIFF with any band count, dtype, CRS and nodata, for tests."""
    count, height, width = data.shape
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": str(data.dtype),
        "transform": from_origin(origin[0], origin[1], pixel_size, pixel_size),
    }
    if crs is not None:
        profile["crs"] = crs
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


@pytest.fixture
def geotiff(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(10_000))

    def make(data: np.ndarray, **kwargs) -> Path:
        return write_geotiff(tmp_path / f"tile_{next(counter)}.tif", data, **kwargs)

    return make
