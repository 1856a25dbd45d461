"""Pydantic schemas of region estimates (``/v1/estimates``, estimate jobs)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.schemas import ErrorBody


class _Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class EstimateProgressPublic(_Out):
    tiles_done: int
    tiles_total: int = Field(description="Tiles of the grid over the region's box (0 until a worker fixed the grid).")
    chunks_done: int
    chunks_total: int


class EstimateRequestPublic(_Out):
    source_name: str
    region_crs: str | None
    model: str | None
    tile_size_m: float | None
    max_patches: int | None
    cloud_threshold: float | None
    max_price: float | None = None
    target_accuracy: float | None = None
    pricing: dict[str, Any]


class EstimateJobPublic(_Out):
    id: str
    kind: Literal["estimate"]
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    created: str
    finished: str | None
    progress: EstimateProgressPublic
    error: ErrorBody | None
    request: EstimateRequestPublic
    result: dict[str, Any] | None = Field(
        description="When succeeded: tiles planned and skipped; area and price for PatchDrop, Fixed-H at the "
        "same patch counts and full HR coverage; saving_pct; order_geojson (the merged order, WGS84); "
        "spend (when the model is calibrated): the spend-aware order for max_price / target_accuracy, its "
        "expected accuracy, with none and with full HR, and the accuracy-against-spend curve."
    )
    links: dict[str, str]
