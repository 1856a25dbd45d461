"""Plans for uploads larger than one model tile: cut into the model's tile grid, planned jointly.

The same pipeline as region estimates (``models.acquisition.region``: the tile grid, chunked reads,
the order path and its billing), with the LR classifier run as well, since an upload is
small: the spend-aware order (``models.acquisition.spend.plan_spend``) over all of the upload's tiles,
with the bundle's value model on the LR features. Also the spend block of single-tile plans.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from shapely.geometry import box

from models.acquisition.planning import quote_json
from models.acquisition.pricing import PricingProfile, bill
from models.acquisition.region import (
    PLANNED,
    RegionSpec,
    load_chunk,
    plan_tiles,
    spec_for_model,
    tile_px_for,
    tiles_order,
)
from models.acquisition.spend import SpendPlan, ValueModel, plan_spend, tile_features
from models.errors import BudgetError, UncalibratedModelError
from models.geo.footprints import WGS84, bounds_in, geojson, metric_crs, transform_geometry
from models.geo.raster import RasterTile


def scene_tiles(tile: RasterTile, bundle: Any, tile_size_m: float | None = None) -> tuple[int, int, int]:
    """(tile_px, full tile rows, full tile cols) of the model's tile grid over an upload."""
    px = tile_px_for(abs(tile.transform.a), bundle.lr_size[1], bundle.metadata.get("lr_pixel_size"), tile_size_m)
    return px, tile.height // px, tile.width // px


def is_scene(tile: RasterTile, bundle: Any) -> bool:
    """More than one whole model tile: planned tile by tile, jointly (a single tile is read whole).

    Only for a bundle that states its LR pixel size: without it a tile's ground size is unknown,
    and the upload is read as one tile.
    """
    if not bundle.metadata.get("lr_pixel_size"):
        return False
    _, rows, cols = scene_tiles(tile, bundle)
    return rows * cols >= 2


def _uncalibrated(bundle: Any, what: str) -> str:
    return (
        f"model {bundle.metadata.get('model_id')} has no value model, which {what} needs: run "
        "`python -m models.training.spend_calibrate --bundle <checkpoint>`"
    )


def spend_single(
    decision: Any, bundle: Any, buy_price: float, pricing: PricingProfile, req: Any, bought: bool | None = None
) -> dict[str, Any] | None:
    """The spend block of a one-tile plan: buy the tile's HR (at ``buy_price``) or not, and what each answer
    is expected to score; None for an uncalibrated bundle.

    ``bought`` None: the spend-aware choice, within ``max_price`` / toward ``target_accuracy``. True or
    False: the purchase is fixed by the user's own patch cap (``max_patches``) and only described.
    """
    vm = ValueModel.of_bundle(bundle.metadata)
    if vm is None:
        if req.target_accuracy is not None:
            raise UncalibratedModelError(_uncalibrated(bundle, "target_accuracy"))
        return None
    names = bundle.class_names
    feats = tile_features(
        np.asarray([decision.probabilities]), np.asarray([[decision.lr_probabilities[n] for n in names]])
    )
    p_lr, p_hr = vm.predict(feats)
    if bought is None:
        plan = plan_spend(
            p_lr.reshape(1, 1),
            p_hr.reshape(1, 1),
            np.ones((1, 1), bool),
            lambda m: buy_price if m.any() else 0.0,
            pricing,
            (1e9, 1e9),
            max_price=req.max_price,
            target_accuracy=req.target_accuracy,
        )
    else:
        lr, hr = float(p_lr[0]), float(p_hr[0])
        plan = SpendPlan(
            mask=np.full((1, 1), bought),
            price=buy_price if bought else 0.0,
            expected_accuracy=hr if bought else lr,
            expected_accuracy_none=lr,
            expected_accuracy_full=hr,
            full_price=buy_price,
            reason=f"the purchase max_patches={req.max_patches} allows",
            curve=((0.0, lr), (buy_price, hr)),
        )
    return {**plan.summary(pricing.currency), "value_model_feature": vm.feature, "tiles_bought": int(plan.mask.sum())}


def plan_scene(
    req: Any, model_id: str, bundle: Any, decide: Callable[[np.ndarray], list], tile: RasterTile, data: bytes
) -> dict[str, Any]:
    """The plan's tile, purchase, LR prediction and spend blocks for a multi-tile upload.

    ``req`` has ``filename``, ``max_price``, ``target_accuracy`` and ``pricing.profile()``;
    ``decide`` is ``models.nn.inference.decide_patches`` for a batch of LR tiles (the worker batches it).
    """
    from models.geo.raster import SceneReader

    if req.max_patches is not None:
        raise BudgetError(
            "max_patches caps the patches of one model tile; this upload is several model tiles, bought as "
            "whole tiles: use max_price or target_accuracy"
        )
    vm = ValueModel.of_bundle(bundle.metadata)
    if vm is None:
        raise UncalibratedModelError(_uncalibrated(bundle, "an upload larger than one model tile"))
    pricing = req.pricing.profile()
    crs = tile.crs.to_string()
    bounds = tile.bounds
    with tempfile.TemporaryDirectory(prefix="patchdrop-plan-") as tmp:
        path = Path(tmp) / "upload.tif"
        path.write_bytes(data)
        with SceneReader(str(path), bundle.bands, name=req.filename, requested_bands=req.bands) as reader:
            spec = spec_for_model(str(path), reader.info, box(*bounds), crs, bundle, chunk_tiles=1 << 20)
            status = np.full(spec.n_tiles, 255, np.uint8)
            lr_parts, flats = [], []
            for index in range(spec.n_chunks):
                loaded = load_chunk(reader, spec, index)
                r0 = loaded.rows[0] - spec.row0
                status[r0 * spec.n_cols : r0 * spec.n_cols + len(loaded.status)] = loaded.status
                lr_parts.append(loaded.lr)
                flats.append(loaded.planned + r0 * spec.n_cols)
    lr = np.concatenate(lr_parts) if lr_parts else np.zeros((0,))
    flat = np.concatenate(flats).astype(int) if flats else np.zeros(0, int)
    decisions = decide(lr) if len(flat) else []
    names = bundle.class_names
    probs = np.asarray([d.probabilities for d in decisions], np.float64).reshape(len(flat), -1)
    lr_probs = np.asarray([[d.lr_probabilities[n] for n in names] for d in decisions]).reshape(len(flat), -1)
    shape = (spec.n_rows, spec.n_cols)
    p_lr = np.zeros(spec.n_tiles)
    p_hr = np.zeros(spec.n_tiles)
    if len(flat):
        a, b = vm.predict(tile_features(probs, lr_probs))
        p_lr[flat], p_hr[flat] = a, b
    planned = (status == PLANNED).reshape(shape)
    work_crs = metric_crs(spec.crs, spec.region_geometry())
    plan = plan_tiles(spec, planned, p_lr, p_hr, pricing, work_crs, req.max_price, req.target_accuracy)
    order = tiles_order(spec, plan.mask, pricing, work_crs)
    full = tiles_order(spec, planned, pricing, work_crs)
    order_q = quote_json(bill(order["_geoms"], pricing), [], work_crs, crs)
    full_q = quote_json(bill(full["_geoms"], pricing), [], work_crs, crs)
    mean_lr = lr_probs.mean(axis=0) if len(flat) else np.full(len(names), 1 / len(names))
    return {
        "spend": _scene_spend(spec, plan, pricing, vm, flat, decisions, p_lr, p_hr, names),
        "purchase": {
            "recommendation": "tiles",
            "reason": f"{int(plan.mask.sum())} of {int(planned.sum())} tiles: {plan.reason}",
            "selected_patches": [],
            "patch_ids": [],
            "price": order_q["price"],
            "currency": pricing.currency,
            "order": order_q,
            "selected_patches_order": order_q,
            "whole_tile": full_q,
            "savings_vs_whole_tile": round(full_q["price"] - order_q["price"], 2),
        },
        "lr_prediction": {
            "class": names[int(np.argmax(mean_lr))],
            "confidence": round(float(mean_lr.max()), 6),
            "probabilities": {n: round(float(v), 6) for n, v in zip(names, mean_lr, strict=True)},
        },
        "tile": {
            **tile.header(req.filename, bundle.bands),
            "crs": crs,
            "bounds": [round(v, 6) for v in bounds],
            "bounds_wgs84": [round(v, 7) for v in bounds_in(bounds, crs, WGS84)],
            "footprint_wgs84": geojson(transform_geometry(box(*bounds), crs, WGS84), 7),
            "area_km2": round(transform_geometry(box(*bounds), crs, work_crs).area / 1e6, 4),
        },
    }


def _scene_spend(
    spec: RegionSpec,
    plan: SpendPlan,
    pricing: PricingProfile,
    vm: ValueModel,
    flat: np.ndarray,
    decisions: list,
    p_lr: np.ndarray,
    p_hr: np.ndarray,
    names: list[str],
) -> dict[str, Any]:
    bought = plan.mask.ravel()
    tile_bounds = spec.tile_bounds(flat // spec.n_cols + spec.row0, flat % spec.n_cols + spec.col0)
    tiles = [
        {
            "row": int(i // spec.n_cols),
            "col": int(i % spec.n_cols),
            "bounds": [round(float(v), 3) for v in tb],
            "bought": bool(bought[i]),
            "lr_class": d.lr_class,
            "lr_confidence": round(d.lr_confidence, 4),
            "p_right_lr": round(float(p_lr[i]), 4),
            "p_right_hr": round(float(p_hr[i]), 4),
            "patch_probabilities": [round(v, 3) for v in d.probabilities],
        }
        for i, tb, d in zip(flat, tile_bounds, decisions, strict=True)
    ]
    return {
        **plan.summary(pricing.currency),
        "value_model_feature": vm.feature,
        "tile_grid": {
            "rows": spec.n_rows,
            "cols": spec.n_cols,
            "tile_size_m": round(abs(spec.transform[0]) * spec.tile_px, 3),
            "tile_px": spec.tile_px,
            "planned": len(flat),
        },
        "tiles": tiles,
    }
