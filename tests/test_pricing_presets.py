"""One pricing schema: presets, overrides, refusals (non-finite numbers included)."""

from __future__ import annotations

import pytest

from models.acquisition.pricing import PRESETS, TASKING_PRICE_LIST, PricingSchema, preset
from models.errors import PricingError


def test_the_default_is_the_archive_list_and_a_preset_fills_every_field():
    assert PricingSchema().profile() == PRESETS["archive"]
    assert PricingSchema(preset="tasking").profile() == TASKING_PRICE_LIST
    assert TASKING_PRICE_LIST.min_area_km2 == 25.0


def test_fields_beside_a_preset_override_it():
    p = PricingSchema.model_validate({"preset": "tasking", "price_per_km2": 12.0}).profile()
    assert p.price_per_km2 == 12.0 and p.min_area_km2 == 25.0


@pytest.mark.parametrize(
    ("text", "price", "min_area"),
    [
        (None, 20.0, 1.0),
        ("tasking", 32.5, 25.0),
        ('{"price_per_km2": 25}', 25.0, 1.0),
        ('{"preset": "tasking", "min_area_km2": 10}', 32.5, 10.0),
    ],
)
def test_a_request_changes_the_service_list(text, price, min_area):
    p = PricingSchema().with_request(text).profile()
    assert (p.price_per_km2, p.min_area_km2) == (price, min_area)


@pytest.mark.parametrize(
    "text",
    [
        '{"price_per_km2": Infinity}',
        '{"price_per_km2": NaN}',
        '{"min_area_km2": -1}',
        '{"preset": "gold"}',
        '{"colour": "red"}',
        "[1, 2]",
        "null",
        "platinum",
        '{"currency": ""}',
        '{"price_per_km2": 1e308}',  # finite, but every price computed from it overflows
        '{"min_area_km2": 1e308}',
        '{"min_width_m": 1e12}',
        '{"min_order_charge": 1e308}',
    ],
)
def test_bad_pricing_is_refused_with_a_reason(text):
    with pytest.raises(PricingError):
        PricingSchema().with_request(text)


def test_unknown_preset_names_are_refused():
    with pytest.raises(PricingError):
        preset("gold")
