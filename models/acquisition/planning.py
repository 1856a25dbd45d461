"""The acquisition plan: which HR patches to buy, as orderable polygons, at what price.

``plan_purchase`` is the pure core: policy probabilities and the tile's
georeferencing in, a ``PurchasePlan`` out. No rasters, files, settings or
globals. ``check_coverage`` decides whether uploaded HR imagery covers what a
plan bought.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Polygon, box

from models.acquisition.pricing import PricingProfile, Quote, quote
from models.errors import BudgetError, CoverageError
from models.geo.footprints import (
    Bounds,
    area_km2,
    box_rings,
    geojson,
    metric_crs,
    ring_geojson,
    rings_wgs84_geojson,
    transform_coords,
    transform_geometry,
    wgs84_bbox,
    wgs84_geojson,
)
from models.geo.patch_grid import PatchGrid

RECOMMENDATIONS = ("patches", "whole_tile", "none")


def quote_json(q: Quote, covered: Sequence[int], metric_crs: str, crs: str, ndigits: int = 6) -> dict[str, Any]:
    """A quote as plans report it: price, areas, the patches it covers and its polygons (``crs`` and WGS84)."""
    return {
        "price": round(q.price, 2),
        "currency": q.currency,
        "area_km2": round(q.area_km2, 4),
        "billable_area_km2": round(q.billable_km2, 4),
        "minimum_charge_applied": q.minimum_charge_applied,
        "patch_ids": sorted(covered),
        "polygons": [
            {
                "geometry": geojson(transform_geometry(p.geometry, metric_crs, crs), ndigits),
                "geometry_wgs84": wgs84_geojson(p.geometry, metric_crs, 7),
                "area_km2": round(p.area_km2, 4),
                "billable_area_km2": round(p.billable_km2, 4),
                "price": round(p.price, 2),
            }
            for p in q.polygons
        ],
    }


@dataclass(frozen=True)
class Budget:
    """A user's cap: at most ``max_patches`` patches and/or an order of at most ``max_price``."""

    max_patches: int | None = None
    max_price: float | None = None

    def __post_init__(self) -> None:
        if self.max_patches is not None and self.max_patches < 0:
            raise BudgetError(f"max_patches must be >= 0, got {self.max_patches}")
        if self.max_price is not None and not (math.isfinite(self.max_price) and self.max_price >= 0):
            raise BudgetError(f"max_price must be a finite number >= 0, got {self.max_price}")

    def check_grid(self, num_patches: int) -> Budget:
        """This budget, if a tile of ``num_patches`` patches can meet it (plans, estimates and inference ask)."""
        if self.max_patches is not None and self.max_patches > num_patches:
            raise BudgetError(f"max_patches must lie in 0..{num_patches}, got {self.max_patches}")
        return self


@dataclass(frozen=True)
class TileFootprint:
    """Where a tile and its patches lie: CRS (string), tile bounds and patch bounds in that CRS."""

    crs: str
    bounds: Bounds
    patch_bounds: tuple[Bounds, ...]  # in patch-id order


@dataclass(frozen=True)
class PurchasePlan:
    footprint: TileFootprint
    metric_crs: str
    patches_metric: tuple[Polygon, ...]  # patch footprints in ``metric_crs``
    selected: tuple[int, ...]  # the policy's patches under the budget, most probable first
    recommendation: str  # one of RECOMMENDATIONS
    reason: str
    order: Quote  # what to buy
    patch_ids: tuple[int, ...]  # patches the recommended order covers: the HR the classifier expects
    patches_quote: Quote  # buying the selected patches
    whole_tile_quote: Quote  # buying the whole tile

    @property
    def buys(self) -> bool:
        return self.recommendation != "none"

    def decided(self, buy: bool, reason: str) -> PurchasePlan:
        """This plan, made to buy or not as the spend-aware decision says (the value model weighs HR's
        expected gain against the price): buying where the policy chose nothing takes the whole tile."""
        if buy == self.buys:
            return self
        if buy:
            return replace(
                self,
                recommendation="whole_tile",
                reason=reason,
                order=self.whole_tile_quote,
                patch_ids=tuple(range(len(self.patches_metric))),
            )
        nothing = Quote((), 0.0, self.order.currency, False)
        return replace(self, recommendation="none", reason=reason, order=nothing, patch_ids=())

    def to_dict(self, ndigits: int = 6) -> dict[str, Any]:
        patches = self.patches_metric
        return {
            "recommendation": self.recommendation,
            "reason": self.reason,
            "selected_patches": list(self.selected),
            "patch_ids": list(self.patch_ids),
            "price": round(self.order.price, 2),
            "currency": self.order.currency,
            "order": quote_json(self.order, self.patch_ids, self.metric_crs, self.footprint.crs, ndigits),
            "selected_patches_order": quote_json(
                self.patches_quote, self.patches_quote.covered(patches), self.metric_crs, self.footprint.crs, ndigits
            ),
            "whole_tile": quote_json(
                self.whole_tile_quote, range(len(patches)), self.metric_crs, self.footprint.crs, ndigits
            ),
            "savings_vs_whole_tile": round(self.whole_tile_quote.price - self.order.price, 2),
        }

    def patch_features(self, ndigits: int = 6) -> list[dict[str, Any]]:
        """Per-patch footprints (tile CRS and WGS84) and areas, in patch-id order."""
        rings = box_rings(self.footprint.patch_bounds)
        rings_wgs84 = rings_wgs84_geojson(rings, self.footprint.crs, 7)
        return [
            {
                "id": pid,
                "area_km2": round(area_km2(patch), 4),
                "footprint": ring_geojson(ring, ndigits),
                "footprint_wgs84": ring_wgs84,
            }
            for pid, (ring, ring_wgs84, patch) in enumerate(zip(rings, rings_wgs84, self.patches_metric, strict=True))
        ]

    def tile_dict(self, ndigits: int = 6) -> dict[str, Any]:
        tile = box(*self.footprint.bounds)
        return {
            "crs": self.footprint.crs,
            "bounds": [round(v, ndigits) for v in self.footprint.bounds],
            "bounds_wgs84": [round(v, 7) for v in wgs84_bbox(tile, self.footprint.crs)],
            "footprint_wgs84": wgs84_geojson(tile, self.footprint.crs, 7),
            "area_km2": round(area_km2(transform_geometry(tile, self.footprint.crs, self.metric_crs)), 4),
        }


def _fmt(q: Quote) -> str:
    return f"{q.price:.2f} {q.currency}"


def plan_purchase(
    probabilities: Sequence[float],
    selected: Sequence[int],
    footprint: TileFootprint,
    budget: Budget,
    pricing: PricingProfile,
) -> PurchasePlan:
    """Turn the policy's choice into an order: budget, merging, minimums, whole-tile comparison.

    ``selected`` are the patches the policy buys (already capped by ``budget.max_patches``);
    a ``budget.max_price`` keeps the most probable of them whose order fits the price.
    """
    if len(footprint.patch_bounds) != len(probabilities):
        raise BudgetError(
            f"{len(probabilities)} patch probabilities for {len(footprint.patch_bounds)} patch footprints"
        )
    tile = box(*footprint.bounds)
    work_crs = metric_crs(footprint.crs, tile)
    rings = transform_coords(box_rings(footprint.patch_bounds), footprint.crs, work_crs)
    patches = list(shapely.polygons(rings))
    ranked = sorted(set(selected), key=lambda i: (-probabilities[i], i))
    if budget.max_patches is not None:
        ranked = ranked[: budget.max_patches]

    whole = quote([transform_geometry(tile, footprint.crs, work_crs)], pricing)
    wanted = quote([patches[i] for i in ranked], pricing)
    chosen, chosen_quote = ranked, wanted
    if budget.max_price is not None:
        while chosen and chosen_quote.price > budget.max_price:
            chosen = chosen[:-1]
            chosen_quote = quote([patches[i] for i in chosen], pricing)

    whole_fits = budget.max_price is None or whole.price <= budget.max_price
    if ranked and whole_fits and whole.price <= wanted.price:
        recommendation, order = "whole_tile", whole
        reason = (
            f"buying the whole tile ({_fmt(whole)}) costs no more than the "
            f"{len(ranked)} selected patches ({_fmt(wanted)}) once vendor minimums apply"
        )
    elif chosen:
        recommendation, order = "patches", chosen_quote
        reason = f"{len(chosen)} of {len(patches)} patches for {_fmt(chosen_quote)}; the whole tile costs {_fmt(whole)}"
        if len(chosen) < len(ranked):
            reason += f"; {len(ranked) - len(chosen)} more selected patches do not fit the price cap"
    elif ranked:
        recommendation, order = "none", chosen_quote
        reason = (
            f"no selected patch fits the price cap of {budget.max_price:.2f} {pricing.currency} "
            f"(the most probable one alone costs {_fmt(quote([patches[ranked[0]]], pricing))})"
        )
    else:
        recommendation, order = "none", chosen_quote
        reason = "the policy buys no HR patch: the LR prediction is confident enough"
    covered = order.covered(patches) if recommendation != "whole_tile" else list(range(len(patches)))
    return PurchasePlan(
        footprint=footprint,
        metric_crs=work_crs,
        patches_metric=tuple(patches),
        selected=tuple(chosen),
        recommendation=recommendation,
        reason=reason,
        order=order,
        patch_ids=tuple(covered),
        patches_quote=chosen_quote,
        whole_tile_quote=whole,
    )


def patch_coverage(valid: np.ndarray, grid: PatchGrid) -> list[float]:
    """Fraction of valid pixels in each patch of an (H, W) validity mask, in patch-id order."""
    h, w = valid.shape
    ph, pw = grid.check_size(h, w)
    blocks = valid.reshape(grid.rows, ph, grid.cols, pw).astype(np.float64)
    return [float(v) for v in blocks.mean(axis=(1, 3)).reshape(-1)]


def check_coverage(valid: np.ndarray, grid: PatchGrid, purchased: Sequence[int], min_fraction: float) -> list[float]:
    """Raise ``CoverageError`` naming every purchased patch the HR imagery does not cover."""
    coverage = patch_coverage(valid, grid)
    missing = [i for i in sorted(purchased) if coverage[i] < min_fraction]
    if missing:
        detail = ", ".join(f"{i} ({coverage[i]:.0%} covered)" for i in missing)
        raise CoverageError(
            f"the HR imagery does not cover purchased patches {detail}; "
            f"each purchased patch must be at least {min_fraction:.0%} covered"
        )
    return coverage


def scale_warning(
    tile_side_m: float, model_side_px: int, trained_pixel_m: float | None, tolerance: float = 1.5
) -> str | None:
    """A warning when a tile, resampled to the model's input size, has pixels far from the training ones.

    The model sees the whole tile at ``model_side_px``; a tile covering much more (or less)
    ground than the training tiles gives it pixels of another size than it learnt on.
    """
    if not trained_pixel_m or trained_pixel_m <= 0 or model_side_px <= 0:
        return None
    effective = tile_side_m / model_side_px
    if max(effective / trained_pixel_m, trained_pixel_m / effective) <= tolerance:
        return None
    return (
        f"the tile ({tile_side_m:.0f} m across) is read as {model_side_px} px of {effective:.0f} m, but the model "
        f"was trained on {trained_pixel_m:g} m pixels ({model_side_px * trained_pixel_m:.0f} m tiles); "
        "the plan may be unreliable: send tiles of about that extent"
    )
