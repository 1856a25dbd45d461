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
    none, half, everything = np.zeros(n, bool), np.arange(n) < n // 2, np.ones(n, bool)
    # Certain outcomes: a perfectly calibrated model never misses.
    sure = spend.calibration_noise(np.ones(n), np.ones(n), np.stack([none, everything]), 0.0, draws=200)
    for c in spend.COUPLINGS:
        assert sure[c]["share_within_1pt"] == 1.0 and sure[c]["median_max_abs_pt"] == 0.0
        assert sure[c]["share_missing_at_least_observed"] == 1.0  # a miss of 0 is always reached
    # LR always right, HR a coin flip on the half bought: only that budget can miss, with an SE of
    # sqrt(200 * 0.25) / 400 = 1.77 pt, so the worst miss's median is about 0.674 * 1.77 = 1.19 pt.
    # (Swapping the streams, or averaging the budgets instead of taking the worst, would move it.)
    p_lr, p_hr = np.ones(n), np.full(n, 0.5)
    coin = spend.calibration_noise(p_lr, p_hr, np.stack([none, half]), 0.02, draws=4000)
    for c in spend.COUPLINGS:
        assert 0.95 < coin[c]["median_max_abs_pt"] < 1.45
        assert coin[c]["q90_max_abs_pt"] > coin[c]["median_max_abs_pt"]
        # P(|N(0, 1.77)| >= 2) is about 0.26
        assert 0.2 < coin[c]["share_missing_at_least_observed"] < 0.33


def test_calibration_noise_couplings_bound_the_worst_miss(spend):
    """Linked LR/HR outcomes make the budgets' misses move together, so the worst of them is smaller."""
    n = 400
    p = np.full(n, 0.6)
    bought = np.stack([np.zeros(n, bool), np.ones(n, bool)])  # LR everywhere, then HR everywhere
    r = spend.calibration_noise(p, p, bought, 0.01, draws=3000)
    # linked: both budgets see the same outcomes, one miss; independent: the worse of two
    assert r["linked"]["share_within_1pt"] > r["independent"]["share_within_1pt"] + 0.1
    assert r["linked"]["median_max_abs_pt"] < r["independent"]["median_max_abs_pt"]


def test_noise_text_skips_results_without_it(spend):
    assert spend._noise({"if_perfectly_calibrated": None}) is None
    assert spend._noise({}) is None
    assert spend._chance_sentence([]) == ""
    noise = {c: {"share_within_1pt": 0.4, "share_missing_at_least_observed": 0.5} for c in spend.COUPLINGS}
    assert spend._span(noise, "share_within_1pt") == "40 %"
    noise["linked"]["share_within_1pt"] = 0.6
    assert spend._span(noise, "share_within_1pt") == "40–60 %"
