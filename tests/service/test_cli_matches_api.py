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
