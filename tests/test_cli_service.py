"""``patchdrop plan`` end to end on a small bundle; ``serve``/``worker`` build the right commands."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.nn.checkpoint import build_bundle, save_bundle
from patchdrop.cli import build_parser, main, serve_command, worker_command


@pytest.fixture
def bundle_file(tmp_path):
    torch.manual_seed(0)
    bundle = build_bundle(
        class_names=["a", "b"],
        bands=["B02", "B03", "B04", "B08"],
        band_mean=[500.0] * 4,
        band_std=[200.0] * 4,
        hr_size=(64, 64),
        lr_size=(16, 16),
        policy_width=8,
        classifier_width=8,
    )
    return save_bundle(bundle, tmp_path / "b.pt")


def test_plan_prints_patches_and_prices(bundle_file, geotiff, capsys):
    tile = geotiff(np.random.default_rng(0).integers(100, 3000, (4, 64, 64)).astype("uint16"))
    assert main(["plan", str(tile), "--checkpoint", str(bundle_file), "--max-patches", "3"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert len(plan["patch_probabilities"]) == 16 and len(plan["purchase"]["selected_patches"]) <= 3
    assert plan["purchase"]["recommendation"] in ("patches", "whole_tile", "none")
    assert plan["purchase"]["whole_tile"]["price"] > 0


def test_plan_batches_several_tiles(bundle_file, geotiff, capsys):
    tiles = [str(geotiff(np.full((4, 64, 64), 500 + 100 * i, "uint16"))) for i in range(2)]
    assert (
        main(
            [
                "plan",
                *tiles,
                "--checkpoint",
                str(bundle_file),
                "--pricing",
                '{"price_per_km2": 1, "min_order_charge": 0}',
            ]
        )
        == 0
    )
    plans = json.loads(capsys.readouterr().out)
    assert [p["tile"]["filename"] for p in plans] == [Path(t).name for t in tiles]
    assert plans[0]["purchase"]["whole_tile"]["price"] == pytest.approx(6.55, abs=0.01)


def test_plan_reports_domain_errors(bundle_file, geotiff, capsys):
    tile = geotiff(np.ones((3, 64, 64), "uint16"))
    assert main(["plan", str(tile), "--checkpoint", str(bundle_file)]) == 2
    assert "wrong_band_count" in capsys.readouterr().err


def test_serve_and_worker_commands(monkeypatch):
    monkeypatch.delenv("PATCHDROP_REDIS_URL", raising=False)
    args = build_parser().parse_args(["serve", "--port", "8123", "--redis-url", "redis://r:6379/0"])
    argv, env = serve_command(args)
    assert argv[1:5] == ["-m", "uvicorn", "--factory", "service.app:create_app"] and "8123" in argv
    assert env["PATCHDROP_REDIS_URL"] == "redis://r:6379/0"
    argv, env = worker_command(build_parser().parse_args(["worker", "--device", "cuda:1"]))
    assert argv[1:6] == ["-m", "celery", "-A", "worker.app", "worker"] and "--pool=solo" in argv
    assert env["PATCHDROP_DEVICE"] == "cuda:1" and "patchdrop-cuda1@%h" in argv
