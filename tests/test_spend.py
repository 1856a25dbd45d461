"""The spend-aware planner: budgets, vendor rules, monotone accuracy, the value model's calibration."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import mapping

from models.acquisition.pricing import PRESETS, PricingProfile
from models.acquisition.region import RegionSpec, tiles_order
from models.acquisition.spend import (
    ValueModel,
    closing,
    fit_bins,
    fit_value_model,
    plan_spend,
    tile_features,
)
from models.errors import BudgetError
from models.geo.raster import fill_polygon_holes, label_components

TILE = 32  # px of 10 m: 320 m tiles, as the default model's


def grid_spec(rows: int, cols: int) -> RegionSpec:
    x0, y1 = 400000.0, 4200000.0
    w, h = cols * TILE * 10.0, rows * TILE * 10.0
    return RegionSpec(
        source="synthetic",
        crs="EPSG:32618",
        transform=(10.0, 0.0, x0, 0.0, -10.0, y1),
        width=cols * TILE,
        height=rows * TILE,
        region=mapping(shapely.box(x0, y1 - h, x0 + w, y1)),
        tile_px=TILE,
        lr_size=(8, 8),
        grid=(4, 4),
        row0=0,
        col0=0,
        n_rows=rows,
        n_cols=cols,
        chunk_rows=rows,
        bands=("B02", "B03", "B04", "B08"),
        band_indexes=(1, 2, 3, 4),
    )


def run_plan(p_lr, p_hr, plannable, profile, **goal):
    spec = grid_spec(*p_lr.shape)
    price = lambda m: tiles_order(spec, m, profile, spec.crs)["price"]  # noqa: E731
    return spec, plan_spend(p_lr, p_hr, plannable, price, profile, (320.0, 320.0), **goal)


profiles = st.one_of(
    st.sampled_from(list(PRESETS.values())),
    st.builds(
        PricingProfile,
        price_per_km2=st.floats(1, 50),
        min_area_km2=st.floats(0, 3),
        min_width_m=st.floats(0, 1200),
        min_order_charge=st.floats(0, 200),
    ),
)


@st.composite
def grids(draw):
    rows, cols = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    p_lr = rng.random((rows, cols))
    p_hr = np.clip(p_lr + rng.normal(0.05, 0.2, (rows, cols)), 0, 1)
    plannable = rng.random((rows, cols)) < draw(st.floats(0.3, 1.0))
    plannable.flat[0] = True
    return p_lr, p_hr, plannable


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grids(), profiles, st.lists(st.floats(0, 1.2), min_size=2, max_size=3))
def test_the_budget_holds_the_rules_hold_and_accuracy_never_falls_as_the_budget_grows(grid, profile, fractions):
    p_lr, p_hr, plannable = grid
    spec, unlimited = run_plan(p_lr, p_hr, plannable, profile, target_accuracy=1.0)
    previous = -1.0
    for frac in sorted(fractions):
        budget = frac * unlimited.full_price
        _, plan = run_plan(p_lr, p_hr, plannable, profile, max_price=budget)
        assert plan.price <= budget + 1e-9
        assert not (plan.mask & ~plannable).any()  # only plannable tiles are bought
        order = tiles_order(spec, plan.mask, profile, spec.crs)
        assert order["price"] == pytest.approx(plan.price)  # the plan's price is the billing engine's
        for poly in order["_geoms"]:
            minx, miny, maxx, maxy = poly.bounds
            assert min(maxx - minx, maxy - miny) >= profile.min_width_m - 1e-3
            assert poly.is_valid and not poly.interiors
        if order["polygons"]:
            assert order["billable_km2"] >= order["polygons"] * profile.min_area_km2 - 1e-4  # rounded to 4 places
            assert order["price"] >= profile.min_order_charge - 0.005  # prices are rounded to cents
        assert plan.expected_accuracy >= previous - 1e-12
        previous = plan.expected_accuracy
        assert plan.expected_accuracy_none - 1e-12 <= plan.expected_accuracy
        # The reported expected accuracy is the value model's for the tiles bought.
        want = (p_lr[plannable].sum() + (p_hr - p_lr)[plan.mask & plannable].sum()) / plannable.sum()
        assert plan.expected_accuracy == pytest.approx(want)


def test_a_target_is_reached_at_the_least_price_on_the_curve():
    rng = np.random.default_rng(3)
    p_lr = rng.random((6, 6)) * 0.5 + 0.5
    p_hr = np.clip(p_lr + 0.2, 0, 1)
    plannable = np.ones((6, 6), bool)
    _, plan = run_plan(p_lr, p_hr, plannable, PRESETS["archive"], target_accuracy=0.8)
    assert plan.expected_accuracy >= 0.8
    cheaper = [a for p, a in plan.curve if p < plan.price]
    assert all(a < 0.8 for a in cheaper)
    assert plan.curve[0] == (0.0, pytest.approx(plan.expected_accuracy_none))


def test_contiguous_groups_beat_scattered_tiles_under_minimum_areas():
    # Two wanted tiles far apart cost two minimum areas; a 4x4 block of wanted tiles costs its area.
    p_lr = np.full((12, 12), 0.9)
    p_hr = p_lr.copy()
    p_hr[0, 0] = p_hr[11, 11] = 1.0
    p_hr[4:8, 4:8] = 1.0
    profile = PricingProfile(price_per_km2=20, min_area_km2=1, min_width_m=500, min_order_charge=0)
    # The block is 1.64 km² (32.80); each lone tile is billed 1 km² (20.00): 40 buys the block only.
    _, plan = run_plan(p_lr, p_hr, np.ones((12, 12), bool), profile, max_price=40)
    assert plan.mask[4:8, 4:8].all() and not plan.mask[0, 0] and not plan.mask[11, 11]


def test_bad_goals_are_refused():
    p = np.full((2, 2), 0.5)
    for goal in ({"max_price": -1.0}, {"max_price": float("inf")}, {"target_accuracy": 1.5}):
        with pytest.raises(BudgetError):
            run_plan(p, p, np.ones((2, 2), bool), PRESETS["archive"], **goal)


def test_a_plan_counts_the_tiles_inside_its_polygons_holes():
    m = np.ones((5, 5), bool)
    m[2, 2] = False
    assert fill_polygon_holes(m).all()
    m[2, 2] = m[2, 0] = m[2, 1] = False  # open to the edge: not a hole
    assert not fill_polygon_holes(m)[2, 2]


def test_a_gap_ringed_through_corners_is_no_hole_and_is_not_bought():
    """Four tiles around a gap, touching at corners only: four polygons, none with a hole, so
    neither the plan's mask nor the priced order holds the gap."""
    m = np.zeros((5, 5), bool)
    m[1, 2] = m[2, 1] = m[2, 3] = m[3, 2] = True
    assert not fill_polygon_holes(m)[2, 2]
    profile = PricingProfile(price_per_km2=10.0, min_area_km2=0.0, min_width_m=0.0, min_order_charge=0.0)
    spec = grid_spec(5, 5)
    order = tiles_order(spec, m, profile, spec.crs)
    assert order["polygons"] == 4
    assert order["billable_km2"] == pytest.approx(4 * 0.1024)


def test_the_plans_tiles_are_the_tiles_the_order_bills():
    """Whatever the shape (rings closed through a corner of one part, parts nested in another's hole,
    corner-touching parts), the tiles a plan counts as bought are exactly those the billing engine's
    hole-free polygons cover: with no minimums, billed area = counted tiles x tile area."""
    profile = PricingProfile(price_per_km2=10.0, min_area_km2=0.0, min_width_m=0.0, min_order_charge=0.0)
    spec = grid_spec(7, 7)
    rng = np.random.default_rng(1)
    c_shape = np.zeros((7, 7), bool)
    c_shape[1, 1:3] = c_shape[2, 1] = c_shape[2, 3] = c_shape[3, 1:4] = True  # ends meet at a corner
    assert fill_polygon_holes(c_shape)[2, 2]
    nested = np.ones((7, 7), bool)
    nested[1:6, 1:6] = False
    nested[3, 3] = True  # an island in a ring's hole: inside the ring's hole-free polygon, bought once
    masks = [c_shape, nested] + [rng.random((7, 7)) < rng.uniform(0.3, 0.7) for _ in range(60)]
    for m in masks:
        billed = tiles_order(spec, m, profile, spec.crs)["billable_km2"]
        assert fill_polygon_holes(m).sum() * 0.1024 == pytest.approx(billed, abs=1e-6), m.astype(int)


def test_an_island_in_a_rings_hole_is_not_billed_twice():
    """Under the archive minimums too: a ring two tiles thick around a 2 x 2 island costs what the
    whole filled block costs."""
    ring = np.ones((8, 8), bool)
    ring[2:6, 2:6] = False
    ring[3:5, 3:5] = True
    spec = grid_spec(8, 8)
    profile = PRESETS["archive"]
    order = tiles_order(spec, ring, profile, spec.crs)
    assert order["polygons"] == 1
    assert order["price"] == pytest.approx(tiles_order(spec, np.ones((8, 8), bool), profile, spec.crs)["price"])


def test_closing_fills_gaps_and_labels_are_four_connected():
    m = np.zeros((5, 7), bool)
    m[2, 1] = m[2, 3] = True
    assert closing(m, 1)[2, 1:4].all()
    labels, n = label_components(np.array([[1, 0, 1], [1, 1, 0], [0, 0, 1]], bool))
    assert n == 3 and labels[0, 0] == labels[1, 1] and labels[0, 2] != labels[2, 2]


def test_binned_value_model_is_calibrated_on_its_data_and_round_trips():
    rng = np.random.default_rng(0)
    x = rng.random(2000)
    lr_right = rng.random(2000) < 0.6 + 0.4 * x
    hr_right = rng.random(2000) < 0.95
    m = fit_bins(x, lr_right, hr_right, "policy_mean", 8)
    p_lr, p_hr = m.predict({"policy_mean": x})
    assert p_lr.mean() == pytest.approx(lr_right.mean(), abs=0.005)
    assert p_hr.mean() == pytest.approx(hr_right.mean(), abs=0.005)
    assert ValueModel.from_dict(m.to_dict()) == m


def test_the_feature_that_predicts_the_gain_is_chosen():
    rng = np.random.default_rng(1)
    n = 1500
    policy = rng.random((n, 16))
    lr = rng.dirichlet(np.ones(4), n)
    conf = lr.max(axis=1)
    lr_right = rng.random(n) < conf  # LR is right about as often as it is confident
    hr_right = rng.random(n) < 0.95
    model, scores = fit_value_model(tile_features(policy, lr), lr_right, hr_right)
    assert model.feature in ("lr_margin", "lr_max", "lr_entropy")
    assert scores[model.feature] > max(scores["policy_mean"], scores["policy_max"], scores["policy_count"]) + 0.05


def test_a_free_price_list_plans_without_dividing_by_zero():
    """0 per km² and no minimums: every group is free, so the planner ranks them first, with no warnings."""
    import warnings

    free = PricingProfile(price_per_km2=0.0, min_area_km2=0.0, min_width_m=0.0, min_order_charge=0.0, currency="USD")
    rng = np.random.default_rng(0)
    p_lr = rng.uniform(0.5, 1.0, (6, 6))
    p_hr = np.clip(p_lr + rng.uniform(0, 0.2, (6, 6)), 0, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        plan = plan_spend(p_lr, p_hr, np.ones((6, 6), bool), lambda m: 0.0, free, (320.0, 320.0), max_price=0.0)
    assert plan.price == 0.0 and plan.expected_accuracy == pytest.approx(p_hr.mean())
