"""The bundled sample tile planned over HTTP with the shipped default model: the plan's content, not only its status.

Embedded mode only: the Celery path runs the same planning code (tests/service/test_service_plans.py
covers both modes with a generated bundle); here the model and the tile are the shipped ones.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from service_helpers import embedded_settings

from models.assets import DEFAULT_CHECKPOINT
from service.app import create_app

SAMPLE_TILE = DEFAULT_CHECKPOINT.parent / "sample_lr_tile.tif"


@pytest.fixture
def plan(tmp_path: Path) -> dict:
    settings = embedded_settings(tmp_path, DEFAULT_CHECKPOINT)
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/plans", files={"tile": ("tile.tif", SAMPLE_TILE.read_bytes(), "image/tiff")})
    assert response.status_code == 201, response.text
    return response.json()


def test_sample_tile_plan_names_the_patches_their_order_and_the_price(plan):
    assert plan["model_version"] == "sentinel2-demo-v4"
    purchase = plan["purchase"]
    # The policy's patches (recorded by running the committed model; patch 1 is the least sure at
    # 0.547, still clear of the 0.5 threshold), most probable first. Neighbours in that order closer
    # than 2e-3 (patches 5 and 0: 0.766 and 0.764) may swap on another machine, so the order is
    # checked against the plan's own probabilities and pinned only where the gap is wider.
    selected = purchase["selected_patches"]
    assert sorted(selected) == [0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert [p["id"] for p in plan["patches"] if p["selected"]] == [0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    probs = plan["patch_probabilities"]
    assert all(probs[a] >= probs[b] for a, b in zip(selected, selected[1:], strict=False))
    assert selected[0] == 4 and selected[-1] == 1 and set(selected[1:3]) == {0, 5}
    # 0.1 km² of tile: the vendor's 1 km² minimum makes the selection cost as much as the whole tile.
    assert purchase["recommendation"] == "whole_tile"
    assert purchase["price"] == purchase["whole_tile"]["price"] == pytest.approx(100.0)
    assert purchase["currency"] == "USD" and purchase["savings_vs_whole_tile"] == pytest.approx(0.0)
    assert purchase["selected_patches_order"]["minimum_charge_applied"]
    assert purchase["patch_ids"] == list(range(16))
    # Recorded: vegetation 0.48753 against fine_mosaic 0.48678, a gap far above float noise (~1e-6).
    assert plan["lr_prediction"]["class"] == "vegetation"
    assert plan["lr_prediction"]["confidence"] == pytest.approx(0.4875, abs=2e-4)
