"""``patchdrop plan`` and ``POST /v1/plans`` run one pipeline: the same JSON for the same input.

The shipped model on the bundled one-tile sample and on the sample scene (several model tiles,
planned jointly), with a budget and a pricing preset: only what the API adds per request differs
(the plan and job ids, the creation time, the links).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from service_helpers import embedded_settings

from models.assets import DEFAULT_CHECKPOINT
from patchdrop.cli import main
from service.app import create_app

ASSETS = DEFAULT_CHECKPOINT.parent
PER_REQUEST = {"id", "created", "job_id", "links"}


@pytest.fixture
def client(tmp_path: Path):
    settings = embedded_settings(tmp_path, DEFAULT_CHECKPOINT)
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("sample_lr_tile.tif", {}),
        ("sample_lr_tile.tif", {"max_patches": "2", "pricing": "tasking"}),
        ("sample_lr_tile.tif", {"target_accuracy": "0.5"}),
        ("sample_lr_scene.tif", {"max_price": "300"}),
    ],
)
def test_the_cli_prints_the_plan_the_api_answers(client, capsys, name, options):
    tile = ASSETS / name
    api = client.post("/v1/plans", files={"tile": (name, tile.read_bytes(), "image/tiff")}, data=options)
    assert api.status_code == 201, api.text
    flags = [a for k, v in options.items() for a in (f"--{k.replace('_', '-')}", v)]
    assert main(["plan", str(tile), *flags]) == 0
    cli = json.loads(capsys.readouterr().out)
    body = api.json()
    assert set(body) - set(cli) == PER_REQUEST - {"id"}  # nothing else is the API's own
    assert {k: v for k, v in cli.items() if k != "id"} == {k: v for k, v in body.items() if k not in PER_REQUEST}
    # One answer: what the plan orders is what its spend block prices and scores.
    assert body["spend"]["price"] == body["purchase"]["price"]
    assert (body["spend"]["tiles_bought"] > 0) == (body["purchase"]["recommendation"] != "none")


def test_a_target_the_lr_answer_already_meets_buys_nothing(client):
    """The sample tile: the policy picks 5 patches, but 50 % is expected from LR alone, so the plan buys none."""
    tile = ASSETS / "sample_lr_tile.tif"
    files = {"tile": (tile.name, tile.read_bytes(), "image/tiff")}
    default = client.post("/v1/plans", files=files).json()
    assert default["purchase"]["recommendation"] == "whole_tile" and default["spend"]["tiles_bought"] == 1
    met = client.post("/v1/plans", files=files, data={"target_accuracy": "0.5"}).json()
    assert met["purchase"]["recommendation"] == "none" and met["purchase"]["patch_ids"] == []
    assert met["purchase"]["price"] == met["spend"]["price"] == 0
    assert met["purchase"]["reason"].startswith("spend-aware: the least price reaching the target")
