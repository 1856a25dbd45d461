"""The work itself, as plain functions on JSON payloads: testable without Celery.

Celery tasks (``worker.tasks``) and the API's embedded mode call these same
functions. Each takes a ``ModelRegistry``; without one it uses the process's
registry, built once from ``WorkerSettings`` (one model load per worker process).
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from typing import Any

import numpy as np
import shapely

from models.acquisition.planning import Budget, TileFootprint, check_coverage, plan_purchase, scale_warning
from models.acquisition.preview import to_rgb
from models.acquisition.scene_plan import is_scene, plan_scene, spend_single
from models.errors import CoverageError
from models.geo.bands import sensor_warning
from models.geo.raster import RasterTile, fill_with_band_mean, read_tile, reproject_to_grid, resampled_transform
from models.nn.inference import classify as classify_purchase
from worker.errors import TileTooSmallError
from worker.payloads import ClassifyPayload, PlanPayload, b64decode, decode_array, encode_array
from worker.registry import ModelRegistry
from worker.settings import WorkerSettings

GEOTIFF = ("GTiff",)


@lru_cache(maxsize=1)
def process_registry() -> ModelRegistry:
    settings = WorkerSettings()
    return ModelRegistry(settings.models, settings.default_model, settings.device, settings.torch_threads)


def describe_models(registry: ModelRegistry | None = None) -> list[dict[str, Any]]:
    return (registry or process_registry()).describe()


def plan(payload: dict[str, Any], registry: ModelRegistry | None = None) -> dict[str, Any]:
    return plan_many([payload], registry)[0]


def plan_many(payloads: list[dict[str, Any]], registry: ModelRegistry | None = None) -> list[dict[str, Any]]:
    """Plans for several tiles; tiles for the same model share one batched forward pass.

    Raises the first request's domain error: callers that batch independent users'
    requests should fall back to one call per request when a batch fails.
    """
    registry = registry or process_registry()
    requests = [PlanPayload.model_validate(p) for p in payloads]
    by_model: dict[str, list[int]] = defaultdict(list)
    for i, req in enumerate(requests):
        by_model[registry.resolve(req.model)].append(i)
    results: list[dict[str, Any] | None] = [None] * len(requests)
    for model_id, indexes in by_model.items():
        _, bundle = registry.get(model_id)
        read = {i: _read_lr(requests[i], bundle) for i in indexes}
        singles = []
        for i in indexes:
            if is_scene(read[i], bundle):  # larger than one model tile: the tile grid, planned jointly
                results[i] = _scene_result(requests[i], model_id, bundle, registry, read[i])
            else:
                singles.append(i)
        if singles:
            decisions = registry.decide(model_id, np.stack([read[i].array for i in singles]))
            for i, decision in zip(singles, decisions, strict=True):
                results[i] = _plan_result(requests[i], model_id, bundle, read[i], decision)
    return results  # type: ignore[return-value]


def _read_lr(req: PlanPayload, bundle) -> RasterTile:
    Budget(req.max_patches, req.max_price).check_grid(bundle.grid.num_patches)
    tile = read_tile(
        b64decode(req.tile),
        bundle.lr_size,
        band_names=bundle.bands,
        drivers=GEOTIFF,
        max_pixels=req.max_tile_pixels,
        thumbnail_size=req.thumbnail_px,
        name=req.filename,
        requested_bands=req.bands,
    )
    grid = bundle.grid
    if tile.width < grid.cols or tile.height < grid.rows:
        # A patch narrower than one native pixel would be invented by upsampling, not observed.
        raise TileTooSmallError(
            f"{req.filename} is {tile.width}x{tile.height} px; the {grid.rows}x{grid.cols} patch grid needs "
            f"at least {grid.cols}x{grid.rows} px (one native pixel per patch)"
        )
    return tile


def _plan_result(req: PlanPayload, model_id: str, bundle, tile: RasterTile, decision) -> dict[str, Any]:
    grid = bundle.grid
    crs = tile.crs.to_string()
    footprint = TileFootprint(crs, tile.bounds, tuple(tile.patch_bounds(grid)))
    budget = Budget(req.max_patches, req.max_price)
    pricing = req.pricing.profile()
    purchase = plan_purchase(decision.probabilities, decision.selected, footprint, budget, pricing)
    # The spend-aware decision (HR's expected gain for its price) says whether to buy; the policy's
    # patches and the vendor minimums say what (plan_purchase). One answer, in the purchase and in spend.
    # A user's own patch cap (max_patches) fixes the purchase; the spend block then only describes it.
    buy_price = purchase.order.price if purchase.buys else purchase.whole_tile_quote.price
    fixed = purchase.buys if req.max_patches is not None else None
    spend = spend_single(decision, bundle, buy_price, pricing, req, bought=fixed)
    if spend is not None:
        purchase = purchase.decided(spend["tiles_bought"] == 1, f"spend-aware: {spend['reason']}")
    chosen = set(purchase.selected)
    patches = [
        {**feature, "probability": decision.probabilities[feature["id"]], "selected": feature["id"] in chosen}
        for feature in purchase.patch_features()
    ]
    plan_doc = _document(
        req,
        model_id,
        bundle,
        tile={**tile.header(req.filename, bundle.bands), **purchase.tile_dict()},
        patch_probabilities=decision.probabilities,
        patches=patches,
        purchase=purchase.to_dict(),
        lr_prediction={
            "class": decision.lr_class,
            "confidence": round(decision.lr_confidence, 6),
            "probabilities": {k: round(v, 6) for k, v in decision.lr_probabilities.items()},
        },
        warnings=_warnings(purchase, bundle) + _band_warnings(tile, bundle),
        spend=spend,
    )
    return {"plan": plan_doc, "artifacts": _artifacts(tile, bundle)}


def _scene_result(req: PlanPayload, model_id: str, bundle, registry: ModelRegistry, tile: RasterTile) -> dict:
    scene = plan_scene(req, model_id, bundle, lambda lr: registry.decide(model_id, lr), tile, b64decode(req.tile))
    plan_doc = _document(
        req,
        model_id,
        bundle,
        tile=scene["tile"],
        patch_probabilities=[],
        patches=[],
        purchase=scene["purchase"],
        lr_prediction=scene["lr_prediction"],
        warnings=_band_warnings(tile, bundle),
        spend=scene["spend"],
    )
    return {"plan": plan_doc, "artifacts": _artifacts(tile, bundle)}


def _document(req: PlanPayload, model_id: str, bundle, **parts: Any) -> dict[str, Any]:
    """A plan document: what every plan says about the request and the model, and its own ``parts``."""
    return {
        "id": req.plan_id,
        "model": model_id,
        "model_version": bundle.metadata.get("model_id"),
        "grid": {"rows": bundle.grid.rows, "cols": bundle.grid.cols},
        "budget": {"max_patches": req.max_patches, "max_price": req.max_price},
        "pricing": req.pricing.model_dump(),
        **parts,
    }


def _artifacts(tile: RasterTile, bundle) -> dict[str, Any]:
    """What a plan keeps for its preview and its classification: the LR input and where it lies."""
    return {
        "crs": tile.crs.to_string(),
        "transform": list(tile.transform)[:6],
        "width": tile.width,
        "height": tile.height,
        "lr_input": encode_array(tile.array.astype(np.float32)),
        "thumbnail": encode_array(to_rgb(tile.thumbnail, bundle.bands)) if tile.thumbnail is not None else None,
    }


def _warnings(purchase, bundle) -> list[str]:
    minx, miny, maxx, maxy = shapely.union_all(purchase.patches_metric).bounds
    side_m = ((maxx - minx) + (maxy - miny)) / 2
    warning = scale_warning(side_m, bundle.lr_size[1], bundle.metadata.get("lr_pixel_size"))
    return [warning] if warning else []


def _band_warnings(tile: RasterTile, bundle) -> list[str]:
    if tile.bands is None:
        return []
    warning = sensor_warning(tile.bands, bundle.bands, bundle.metadata.get("sensor"))
    return [warning] if warning else []


def classify(payload: dict[str, Any], registry: ModelRegistry | None = None) -> dict[str, Any]:
    """Class probabilities (the bundle's own fusion rule) from a plan's LR input and its purchased HR patches."""
    registry = registry or process_registry()
    req = ClassifyPayload.model_validate(payload)
    model_id, bundle = registry.get(req.model)
    purchased = sorted(set(req.purchased))
    h, w = bundle.hr_size
    coverage: list[float] = []
    if purchased:
        hr, coverage = _assemble_hr(req, bundle, purchased)
    else:
        hr = np.zeros((len(bundle.bands), h, w), np.float32)  # masked out entirely: LR stream only
    lr = decode_array(req.lr_input)
    result = classify_purchase(bundle, lr, hr, [purchased])[0]
    return {
        "plan_id": req.plan_id,
        "model": model_id,
        "class": result.class_name,
        "confidence": round(result.confidence, 6),
        "probabilities": {k: round(v, 6) for k, v in result.probabilities.items()},
        "patches_used": result.patches_used,
        "purchased_patches": purchased,
        "patch_coverage": {str(i): round(coverage[i], 4) for i in purchased} if coverage else {},
        "files": [f.filename for f in req.files],
    }


def _assemble_hr(req: ClassifyPayload, bundle, purchased: list[int]) -> tuple[np.ndarray, list[float]]:
    """Warp every upload onto the plan's HR grid, composite them, check the purchased patches."""
    if not req.files:
        raise CoverageError(
            f"the plan bought patches {', '.join(map(str, purchased))}; upload HR imagery covering them"
        )
    h, w = bundle.hr_size
    transform = resampled_transform(req.transform, (req.height, req.width), (h, w))
    lr_grid = resampled_transform(req.transform, (req.height, req.width), bundle.lr_size)  # the LR the model sees
    lr_pixel = max(abs(lr_grid[0]), abs(lr_grid[4]))
    composite = np.full((len(bundle.bands), h, w), np.nan, np.float32)
    for f in req.files:
        image = reproject_to_grid(
            b64decode(f.data),
            req.crs,
            transform,
            (h, w),
            bundle.bands,
            name=f.filename,
            drivers=GEOTIFF,
            max_pixels=req.max_tile_pixels,
            coarsest=lr_pixel,
        )
        if not image.valid.any():
            raise CoverageError(f"{f.filename} does not overlap the plan's tile; check its footprint and CRS")
        take = image.valid & ~np.isfinite(composite).all(axis=0)
        composite[:, take] = image.array[:, take]
    coverage = check_coverage(np.isfinite(composite).all(axis=0), bundle.grid, purchased, req.min_patch_coverage)
    return fill_with_band_mean(np.ma.masked_invalid(composite)), coverage
