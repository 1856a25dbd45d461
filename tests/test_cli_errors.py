"""``patchdrop`` answers bad files and options with one ``error [code]: ...`` line and exit status 2."""

from __future__ import annotations

import json

import pytest

from patchdrop.cli import main

TILE = "models/assets/sample_lr_tile.tif"
SCENE = "models/assets/sample_lr_scene.tif"


def run(capsys, *argv: str) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error [") and "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (("plan", "/no/such/tile.tif"), "No such file or directory"),
        (("plan", "models"), "Is a directory"),
        (("plan", TILE, "--max-price", "-1"), "max_price: Input should be greater than or equal to 0"),
        (("plan", TILE, "--max-price", "nan"), "max_price: Input should be a finite number"),
        (("plan", TILE, "--target-accuracy", "1.5"), "target_accuracy: Input should be less than or equal to 1"),
        (("estimate", "/no/such/region.geojson", SCENE), "No such file or directory"),
        (("estimate", SCENE, SCENE), "not UTF-8 text"),
    ],
)
def test_bad_files_and_options(capsys, argv, fragment):
    assert fragment in run(capsys, *argv)


@pytest.mark.parametrize(
    ("option", "value", "fragment"),
    [
        ("--tile-size-m", "inf", "tile_size_m: Input should be a finite number"),
        ("--tile-size-m", "1e308", "tile_size_m: Input should be less than or equal to"),
        ("--cloud-threshold", "nan", "cloud_threshold: Input should be a finite number"),
    ],
)
def test_estimate_options_the_api_refuses_are_refused_here_too(capsys, tmp_path, option, value, fragment):
    region = tmp_path / "region.geojson"
    region.write_text(
        json.dumps(
            {"type": "Polygon", "coordinates": [[[-75.6, 37.6], [-75.59, 37.6], [-75.59, 37.61], [-75.6, 37.6]]]}
        )
    )
    assert fragment in run(capsys, "estimate", str(region), SCENE, option, value, "--out", str(tmp_path / "out"))
