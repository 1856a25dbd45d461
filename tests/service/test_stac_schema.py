"""Plans as STAC Items validated against the official STAC JSON schemas (item and GeoJSON), offline.

The schemas are the ones pystac-core ships (``pystac/validation/jsonschemas``: the stac-spec item
schema and the geojson.org Feature/Geometry schemas it references); the validator is jsonschema-rs.
A retriever serves every ``$ref`` from those files and refuses anything else, so no test fetches a URL.
The projection and label extensions' schemas are published only online and are not checked here
(``test_service_plans.py`` checks their fields).
"""

from __future__ import annotations

import copy
import importlib.resources
import json
from functools import cache

import jsonschema_rs
import pytest
from pystac.version import STACVersion
from rasterio.transform import from_origin
from service_helpers import geotiff_bytes, lr_array

from service.stac import STAC_VERSION

TIFF = "image/tiff"
VERSION = STACVersion.DEFAULT_STAC_VERSION
STAC_SCHEMAS = f"https://schemas.stacspec.org/v{VERSION}/"
GEOJSON_SCHEMAS = "https://geojson.org/schema/"
ITEM_SCHEMA = f"{STAC_SCHEMAS}item-spec/json-schema/item.json"


@cache
def _offline(uri: str) -> dict:
    """The schema at ``uri`` from pystac-core's files (read as data: its validation module needs the
    python jsonschema package, which we do not install)."""
    files = importlib.resources.files("pystac") / "validation" / "jsonschemas"
    if uri.startswith(STAC_SCHEMAS) and uri.count("/json-schema/") == 1:
        path = files / "stac-spec" / f"v{VERSION}" / uri.rsplit("/", 1)[1]
    elif uri.startswith(GEOJSON_SCHEMAS):
        path = files / "geojson" / uri.rsplit("/", 1)[1]
    else:
        raise LookupError(f"schema {uri} is not shipped with pystac-core; the tests fetch no URLs")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def item_validator():
    return jsonschema_rs.validator_for(_offline(ITEM_SCHEMA), retriever=_offline)


def _errors(validator, item: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in validator.iter_errors(item)]


def test_the_items_stac_version_is_the_one_of_the_schemas():
    assert STAC_VERSION == VERSION


TILES = {
    "utm": {},
    "north-pole": {"crs": "EPSG:3413", "transform": from_origin(-1280.0, 1280.0, 40.0, 40.0)},
    "antimeridian": {"crs": "EPSG:32660", "transform": from_origin(832000.0, 100000.0, 40.0, 40.0)},
}


@pytest.mark.parametrize("where", TILES)
def test_a_plan_is_a_valid_stac_item(client, item_validator, where):
    tile = geotiff_bytes(lr_array(), **TILES[where])
    response = client.post("/v1/plans", params={"format": "stac"}, files={"tile": ("t.tif", tile, TIFF)})
    assert response.status_code == 201, response.text
    item = response.json()
    assert _errors(item_validator, item) == []
    stored = client.get(f"/v1/plans/{item['id']}", params={"format": "stac"}).json()
    assert _errors(item_validator, stored) == []


@pytest.mark.parametrize(
    "break_it",
    [
        lambda item: item.pop("bbox"),
        lambda item: item["geometry"].update(coordinates=[[[0, 0], [1, 1]]]),  # not a closed ring
        lambda item: item["properties"].pop("datetime"),
        lambda item: item["links"][0].pop("href"),
    ],
    ids=["no-bbox", "open-ring", "no-datetime", "link-without-href"],
)
def test_the_schema_check_catches_a_broken_item(client, item_validator, plan, break_it):
    item = client.get(f"/v1/plans/{plan['id']}", params={"format": "stac"}).json()
    broken = copy.deepcopy(item)
    break_it(broken)
    assert _errors(item_validator, item) == [] and _errors(item_validator, broken)
