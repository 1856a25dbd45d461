"""benchmarks/spend.py's calibration pooled over held-out strips: weights, SE, and when it declines."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def spend():
    spec = importlib.util.spec_from_file_location("spend_benchmark", ROOT / "benchmarks" / "spend.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run(tiles: int, gaps: list[float], ses: list[float], budgets=(0.1, 0.2)) -> dict:
    """A spend result as the benchmark writes it: gaps in pt, SEs as fractions."""
    curve = [{"spend": b, "se": se} for b, se in zip(budgets, ses, strict=True)]
    return {
        "region": {"tiles": tiles},
        "curves": {"spend_aware": curve},
        "calibration": {"expected_minus_measured_pt": gaps},
    }


def test_pooled_weighs_strips_by_tiles_and_combines_ses(spend):
    p = spend.pooled_calibration([run(100, [-2.0, 1.0], [0.03, 0.04]), run(300, [2.0, -1.0], [0.01, 0.02])])
    # weights 1/4, 3/4
    assert p["expected_minus_measured_pt"] == [1.0, -0.5]
    assert p["se_pt"] == [round(100 * ((0.25 * 0.03) ** 2 + (0.75 * 0.01) ** 2) ** 0.5, 2),
                          round(100 * ((0.25 * 0.04) ** 2 + (0.75 * 0.02) ** 2) ** 0.5, 2)]  # fmt: skip
    assert p["max_abs_pt"] == 1.0 and p["max_abs_se_pt"] == p["se_pt"][0]
    # the strips' misses cancel in the bias, not in the per-strip figures
    assert p["max_abs_per_strip_pt"] == [2.0, 2.0]
    assert p["mean_abs_per_strip_pt"] == 1.5
    assert (p["tiles"], p["strips"]) == (400, 2)


def test_pooled_declines_one_strip_or_different_budgets(spend):
    assert spend.pooled_calibration([run(100, [0.0, 0.0], [0.01, 0.01])]) is None
    a = run(100, [0.0, 0.0], [0.01, 0.01])
    b = run(100, [0.0, 0.0], [0.01, 0.01], budgets=(0.1, 0.3))
    assert spend.pooled_calibration([a, b]) is None


def test_promise_side_words(spend):
    assert spend._promise_side([-0.1, -0.5]) == "under-promising at every budget"
    assert spend._promise_side([0.2, 0.1]) == "over-promising at every budget"
    assert spend._promise_side([0.0, -0.1]).startswith("under at some budgets")


def test_calibration_noise_floor(spend):
    n = 400
    bought = np.zeros((3, n), bool)
    bought[1, :100] = True
    bought[2, :] = True
    # Certain outcomes: a perfectly calibrated model never misses.
    sure = spend.calibration_noise(np.ones(n), np.ones(n), bought, 0.0, draws=200)
    assert sure["share_within_1pt"] == 1.0 and sure["median_max_abs_pt"] == 0.0
    # Coin flips on 400 tiles: one accuracy's SE is 2.5 pt, so a 1 pt check mostly fails by chance.
    coin = spend.calibration_noise(np.full(n, 0.5), np.full(n, 0.5), bought, 0.01, draws=2000)
    assert coin["share_within_1pt"] < 0.4
    assert 1.0 < coin["median_max_abs_pt"] < coin["q90_max_abs_pt"] < 6.0
    assert coin["share_missing_more_than_observed"] == pytest.approx(1 - coin["share_within_1pt"])
    assert sure["share_missing_more_than_observed"] == 0.0
