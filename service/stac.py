"""A plan as a STAC Item (projection extension for the tile's grid, label extension for the LR class)."""

from __future__ import annotations

from typing import Any

STAC_VERSION = "1.1.0"  # the version whose official schemas the tests validate against (pystac-core)
PROJECTION = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
LABEL = "https://stac-extensions.github.io/label/v1.0.1/schema.json"
MEDIA_TYPE = "application/geo+json"


def plan_item(plan: dict[str, Any], base_url: str) -> dict[str, Any]:
    tile, purchase, pred = plan["tile"], plan["purchase"], plan["lr_prediction"]
    minx, miny, maxx, maxy = tile["bounds"]
    xres, yres = tile["pixel_size"]
    href = f"{base_url.rstrip('/')}/v1/plans/{plan['id']}"
    props: dict[str, Any] = {
        "datetime": plan["created"],
        "created": plan["created"],
        "title": f"HR acquisition plan for {tile['filename']}",
        "proj:code": tile["crs_code"],
        "proj:bbox": [minx, miny, maxx, maxy],
        "proj:shape": [tile["height"], tile["width"]],
        "proj:transform": [xres, 0.0, minx, 0.0, -yres, maxy],
        "label:description": "Scene class predicted from the LR tile alone",
        "label:type": "vector",
        "label:properties": None,
        "label:tasks": ["classification"],
        "label:methods": ["automated"],
        "label:classes": [{"name": None, "classes": sorted(pred["probabilities"])}],
        "patchdrop:model": plan["model"],
        "patchdrop:lr_class": pred["class"],
        "patchdrop:lr_confidence": pred["confidence"],
        "patchdrop:patch_probabilities": plan["patch_probabilities"],
        "patchdrop:recommendation": purchase["recommendation"],
        "patchdrop:selected_patches": purchase["selected_patches"],
        "patchdrop:patch_ids": purchase["patch_ids"],
        "patchdrop:price": purchase["price"],
        "patchdrop:whole_tile_price": purchase["whole_tile"]["price"],
        "patchdrop:currency": purchase["currency"],
        "patchdrop:order_area_km2": purchase["order"]["area_km2"],
        "patchdrop:order": {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "geometry": p["geometry_wgs84"],
                    "properties": {
                        "area_km2": p["area_km2"],
                        "billable_area_km2": p["billable_area_km2"],
                        "price": p["price"],
                    },
                }
                for p in purchase["order"]["polygons"]
            ],
        },
    }
    spend = plan.get("spend")
    if spend:
        props.update(
            {
                "patchdrop:expected_accuracy": spend["expected_accuracy"],
                "patchdrop:expected_accuracy_none": spend["expected_accuracy_none"],
                "patchdrop:expected_accuracy_full_hr": spend["expected_accuracy_full_hr"],
                "patchdrop:full_hr_price": spend["full_hr_price"],
                "patchdrop:spend_curve": spend["curve"],
            }
        )
    if tile["crs_code"] is None:
        props["proj:wkt2"] = tile["crs"]
    return {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": [PROJECTION, LABEL],
        "id": plan["id"],
        "geometry": tile["footprint_wgs84"],
        "bbox": tile["bounds_wgs84"],
        "properties": props,
        "links": [
            {"rel": "self", "href": f"{href}?format=stac", "type": MEDIA_TYPE},
            {"rel": "alternate", "href": href, "type": "application/json", "title": "the plan"},
        ],
        "assets": {
            "preview": {
                "href": f"{href}/preview.png",
                "type": "image/png",
                "title": "LR tile with the patches to buy",
                "roles": ["overview"],
            },
        },
    }
