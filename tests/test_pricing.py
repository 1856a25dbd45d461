import dataclasses

import pytest
from shapely.geometry import box

from models.acquisition.pricing import ARCHIVE_PRICE_LIST, PricingProfile, orderable_polygons, quote, widen
from models.errors import PricingError

FLAT = PricingProfile(price_per_km2=10.0, min_area_km2=0.0, min_width_m=0.0, min_order_charge=0.0)


def km_box(x0, y0, x1, y1):
    return box(x0 * 1000, y0 * 1000, x1 * 1000, y1 * 1000)


def test_adjacent_patches_merge_into_one_polygon_and_holes_are_filled():
    ring = [km_box(c, r, c + 1, r + 1) for r in range(3) for c in range(3) if (r, c) != (1, 1)]
    polys = orderable_polygons(ring, min_width=0)
    assert len(polys) == 1
    assert list(polys[0].interiors) == []
    assert polys[0].area == pytest.approx(9e6)  # the hole is bought too


def test_narrow_polygons_are_widened_across_their_short_side_only():
    strip = km_box(0, 0, 2, 0.2)
    wide = widen(strip, 500)
    minx, miny, maxx, maxy = wide.bounds
    assert (maxx - minx, maxy - miny) == pytest.approx((2000, 500))
    assert wide.covers(strip)
    assert widen(km_box(0, 0, 1, 1), 500).equals(km_box(0, 0, 1, 1))


def test_minimum_area_and_minimum_charge_apply():
    profile = PricingProfile(price_per_km2=20, min_area_km2=1.0, min_width_m=0, min_order_charge=0)
    q = quote([km_box(0, 0, 0.5, 0.5)], profile)
    assert q.area_km2 == pytest.approx(0.25)
    assert q.billable_km2 == pytest.approx(1.0)
    assert q.price == pytest.approx(20.0)
    charged = quote([km_box(0, 0, 0.5, 0.5)], dataclasses.replace(profile, min_order_charge=75))
    assert charged.price == 75 and charged.minimum_charge_applied


def test_distant_polygons_stay_separate_when_merging_costs_more():
    q = quote([km_box(0, 0, 1, 1), km_box(10, 10, 11, 11)], FLAT)
    assert len(q.polygons) == 2 and q.price == pytest.approx(20.0)


def test_close_small_polygons_merge_when_one_rectangle_is_cheaper():
    profile = PricingProfile(price_per_km2=10, min_area_km2=1.0, min_width_m=0, min_order_charge=0)
    a, b = km_box(0, 0, 0.5, 0.5), km_box(0.5, 0.5, 1.0, 1.0)  # touch at a corner only
    q = quote([a, b], profile)
    # Two polygons billed 1 km² each (20) versus one 1 km² rectangle (10).
    assert len(q.polygons) == 1 and q.price == pytest.approx(10.0)
    assert q.covered([a, b, km_box(0, 0.5, 0.5, 1.0), km_box(2, 2, 3, 3)]) == [0, 1, 2]


def test_empty_order_costs_nothing():
    q = quote([], ARCHIVE_PRICE_LIST)
    assert q.price == 0 and not q.polygons and not q.minimum_charge_applied


def test_invalid_profiles_are_refused():
    with pytest.raises(PricingError, match="price_per_km2"):
        PricingProfile(price_per_km2=-1, min_area_km2=0, min_width_m=0, min_order_charge=0)
    with pytest.raises(PricingError, match="min_area_km2"):
        PricingProfile(price_per_km2=1, min_area_km2=float("nan"), min_width_m=0, min_order_charge=0)
