"""Dynamic batching of concurrent requests (the embedded API's shared model forwards)."""

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from models.geo.raster import read_tile
from models.nn.checkpoint import load_bundle
from models.nn.inference import decide_patches
from worker.batching import DynamicBatcher
from worker.registry import ModelRegistry

ASSETS = Path(__file__).resolve().parents[1] / "models" / "assets"


def wait_until(condition, timeout: float = 5.0) -> None:
    """Poll ``condition`` until it holds; fail at the deadline (instead of sleeping and hoping)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        time.sleep(0.001)


def run_in_threads(batcher, items):
    results = {}

    def call(x):
        try:
            results[x] = batcher.submit(x)
        except Exception as exc:
            results[x] = exc

    threads = [threading.Thread(target=call, args=(x,)) for x in items]
    for t in threads:
        t.start()
    return threads, results


def test_requests_arriving_during_a_batch_share_the_next_one():
    started = threading.Event()
    release = threading.Event()

    def fn(items):
        if not started.is_set():
            started.set()
            release.wait(5)  # hold the first batch until the others are queued
        return [x * 10 for x in items]

    batcher = DynamicBatcher(fn, max_batch=8)
    try:
        first, r1 = run_in_threads(batcher, [1])
        assert started.wait(5)
        rest, r2 = run_in_threads(batcher, [2, 3, 4, 5])
        wait_until(lambda: batcher.pending() == 4)  # all four queued behind the held batch
        release.set()
        for t in first + rest:
            t.join(5)
        assert {**r1, **r2} == {1: 10, 2: 20, 3: 30, 4: 40, 5: 50}
        assert batcher.batch_sizes == [1, 4]
    finally:
        batcher.close()


def test_a_lone_request_runs_at_once_and_max_batch_is_respected():
    batcher = DynamicBatcher(lambda items: [x + 1 for x in items], max_batch=2)
    try:
        t0 = time.perf_counter()
        assert batcher.submit(1) == 2
        assert time.perf_counter() - t0 < 1.0
        assert batcher.batch_sizes == [1]
    finally:
        batcher.close()


def test_one_bad_item_fails_only_its_own_caller():
    gate = threading.Event()

    def fn(items):
        gate.wait(5)
        if any(x < 0 for x in items):
            raise ValueError(f"negative item in {items}")
        return [x * 2 for x in items]

    batcher = DynamicBatcher(fn)
    try:
        threads, results = run_in_threads(batcher, [1, -1, 2])
        wait_until(lambda: batcher.pending() + sum(batcher.batch_sizes) == 3)  # every item is in a batch or queued
        gate.set()
        for t in threads:
            t.join(5)
        assert results[1] == 2 and results[2] == 4
        assert isinstance(results[-1], ValueError)
    finally:
        batcher.close()


def test_max_batch_must_be_positive():
    with pytest.raises(ValueError):
        DynamicBatcher(lambda items: items, max_batch=0)


def test_registry_batched_decisions_equal_direct_ones():
    checkpoint = ASSETS / "default.pt"
    bundle = load_bundle(checkpoint)
    tile = read_tile((ASSETS / "sample_lr_tile.tif").read_bytes(), bundle.lr_size, band_names=bundle.bands).array
    registry = ModelRegistry({"default": checkpoint}, "default", "cpu", batch_requests=True)
    try:
        direct = decide_patches(bundle, tile[None])[0]
        batched = registry.decide("default", tile[None])[0]
        assert batched.selected == direct.selected
        assert batched.probabilities == pytest.approx(direct.probabilities, abs=1e-5)
        assert registry._batchers["default"].batch_sizes == [1]
        # A stack of tiles from one caller is already a batch: it bypasses the batcher.
        assert len(registry.decide("default", np.stack([tile, tile]))) == 2
        assert registry._batchers["default"].batch_sizes == [1]
    finally:
        registry.close()
