import dataclasses

import numpy as np
import pytest
from shapely.geometry import box

from models.acquisition.planning import Budget, TileFootprint, check_coverage, patch_coverage, plan_purchase
from models.acquisition.pricing import PricingProfile
from models.errors import BudgetError, CoverageError
from models.geo.footprints import crs_code, metric_crs
from models.geo.patch_grid import PatchGrid

X0, Y1, PATCH = 435730.0, 4179460.0, 640.0  # 64 px at 40 m, 4x4 grid


def footprint(crs="EPSG:32618", x0=X0, y1=Y1, size=PATCH):
    patches = tuple(
        (x0 + c * size, y1 - (r + 1) * size, x0 + (c + 1) * size, y1 - r * size) for r in range(4) for c in range(4)
    )
    return TileFootprint(crs, (x0, y1 - 4 * size, x0 + 4 * size, y1), patches)


FLAT = PricingProfile(price_per_km2=10.0, min_area_km2=0.0, min_width_m=0.0, min_order_charge=0.0)
PROBS = [0.9 if i in (5, 6, 9) else 0.1 for i in range(16)]


def test_selected_patches_are_priced_and_located():
    plan = plan_purchase(PROBS, [5, 6, 9], footprint(), Budget(), FLAT)
    assert plan.recommendation == "patches"
    assert plan.patch_ids == (5, 6, 9)
    assert plan.order.area_km2 == pytest.approx(3 * 0.4096)
    assert plan.order.price == pytest.approx(3 * 4.096, abs=0.01)
    assert plan.whole_tile_quote.price == pytest.approx(65.54, abs=0.01)
    d = plan.to_dict()
    assert d["order"]["polygons"][0]["geometry"]["type"] == "Polygon"
    lon, lat = d["order"]["polygons"][0]["geometry_wgs84"]["coordinates"][0][0]
    assert -76 < lon < -75 and 37 < lat < 38  # UTM 18N, Virginia coast
    features = plan.patch_features()
    assert [f["id"] for f in features] == list(range(16))
    assert features[5]["area_km2"] == pytest.approx(0.4096)
    assert tuple(features[0]["footprint"]["coordinates"][0][2]) == (X0, Y1)


def test_whole_tile_is_recommended_when_minimums_make_patches_dearer():
    profile = PricingProfile(price_per_km2=20.0, min_area_km2=5.0, min_width_m=0.0, min_order_charge=0.0)
    scattered = [0, 3, 12, 15]  # four corners: four polygons billed 5 km² each
    plan = plan_purchase([0.9] * 16, scattered, footprint(), Budget(), profile)
    assert plan.recommendation == "whole_tile"
    assert plan.patch_ids == tuple(range(16))
    assert plan.order is plan.whole_tile_quote
    assert "whole tile" in plan.reason
    assert plan.to_dict()["savings_vs_whole_tile"] == 0


def test_max_patches_keeps_the_most_probable():
    probs = [0.6 + i / 100 for i in range(16)]
    plan = plan_purchase(probs, list(range(16)), footprint(), Budget(max_patches=2), FLAT)
    assert plan.selected == (15, 14)


def test_max_price_drops_the_least_probable_until_the_order_fits():
    plan = plan_purchase(PROBS, [5, 6, 9], footprint(), Budget(max_price=9.0), FLAT)
    assert plan.recommendation == "patches"
    assert plan.selected == (5, 6)
    assert plan.order.price <= 9.0
    too_poor = plan_purchase(PROBS, [5, 6, 9], footprint(), Budget(max_price=1.0), FLAT)
    assert too_poor.recommendation == "none" and too_poor.patch_ids == ()
    assert "price cap" in too_poor.reason


def test_nothing_selected_means_nothing_to_buy():
    plan = plan_purchase([0.1] * 16, [], footprint(), Budget(), FLAT)
    assert plan.recommendation == "none" and plan.order.price == 0


def test_geographic_tiles_are_measured_in_utm():
    deg = 0.01
    fp = footprint(crs="EPSG:4326", x0=-75.73, y1=37.76, size=deg)
    assert metric_crs("EPSG:4326", box(*fp.bounds)) == "EPSG:32618"
    plan = plan_purchase(PROBS, [5], fp, Budget(), FLAT)
    assert 0.8 < plan.order.area_km2 < 1.0  # ~0.88 km x ~1.11 km
    assert crs_code("EPSG:4326") == "EPSG:4326"


def test_budget_validation():
    with pytest.raises(BudgetError):
        Budget(max_patches=-1)
    with pytest.raises(BudgetError):
        Budget(max_price=float("inf"))


def test_coverage_names_the_missing_patches():
    valid = np.ones((64, 64), bool)
    valid[:16, :16] = False  # patch 0
    valid[48:, 48:56] = False  # half of patch 15
    grid = PatchGrid(4, 4)
    coverage = patch_coverage(valid, grid)
    assert coverage[0] == 0 and coverage[15] == 0.5 and coverage[5] == 1
    assert check_coverage(valid, grid, [5, 6], 0.99)[5] == 1
    with pytest.raises(CoverageError, match=r"0 \(0% covered\), 15 \(50% covered\)"):
        check_coverage(valid, grid, [0, 5, 15], 0.99)


def test_profile_is_plain_config():
    assert dataclasses.asdict(FLAT)["currency"] == "USD"


def test_scale_warning():
    from models.acquisition.planning import scale_warning

    assert scale_warning(2560, 16, 160) is None
    assert scale_warning(2560, 16, None) is None
    assert "320 m" in scale_warning(2560, 8, 40)
