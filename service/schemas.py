"""Pydantic schemas of the API (``*Public`` out); the request bodies are multipart forms."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Geometry = dict[str, Any]  # a GeoJSON geometry object


class _Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class ErrorBody(_Out):
    code: str = Field(description="Stable machine-readable error code, e.g. wrong_band_count.")
    detail: str = Field(description="What is wrong and how to fix it.")


class HealthPublic(_Out):
    status: Literal["ok"]
    mode: Literal["embedded", "celery"]
    version: str


class ModelPublic(_Out):
    id: str
    default: bool
    checkpoint: str
    device: str
    loaded: bool
    error: str | None = None
    metadata: dict[str, Any]


class ModelsPublic(_Out):
    default_model: str
    models: list[ModelPublic]


class TilePublic(_Out):
    filename: str
    crs: str
    crs_code: str | None
    width: int
    height: int
    pixel_size: list[float]
    bands: list[str]
    bounds: list[float] = Field(description="minx, miny, maxx, maxy in the tile's CRS")
    bounds_wgs84: list[float]
    footprint_wgs84: Geometry
    area_km2: float


class GridPublic(_Out):
    rows: int
    cols: int


class BudgetPublic(_Out):
    max_patches: int | None
    max_price: float | None


class PatchPublic(_Out):
    id: int
    probability: float
    selected: bool = Field(description="Chosen by the policy under the budget.")
    area_km2: float
    footprint: Geometry = Field(description="GeoJSON polygon in the tile's CRS.")
    footprint_wgs84: Geometry


class OrderPolygonPublic(_Out):
    geometry: Geometry = Field(description="GeoJSON polygon in the tile's CRS.")
    geometry_wgs84: Geometry
    area_km2: float
    billable_area_km2: float
    price: float


class QuotePublic(_Out):
    price: float = Field(description="Order total, minimum charge included.")
    currency: str
    area_km2: float
    billable_area_km2: float
    minimum_charge_applied: bool
    patch_ids: list[int] = Field(description="Patches the order covers completely.")
    polygons: list[OrderPolygonPublic]


class PurchasePublic(_Out):
    recommendation: Literal["patches", "whole_tile", "none", "tiles"] = Field(
        description="tiles: an upload larger than one model tile, bought as the spend-aware order of its tiles."
    )
    reason: str
    selected_patches: list[int] = Field(description="The policy's patches under the budget, most probable first.")
    patch_ids: list[int] = Field(description="Patches the recommended order covers: upload their HR to classify.")
    price: float
    currency: str
    order: QuotePublic = Field(description="The recommended order.")
    selected_patches_order: QuotePublic
    whole_tile: QuotePublic
    savings_vs_whole_tile: float


class PredictionPublic(_Out):
    class_: str = Field(alias="class")
    confidence: float
    probabilities: dict[str, float]


class PricingPublic(_Out):
    preset: str | None = None
    price_per_km2: float
    min_area_km2: float
    min_width_m: float
    min_order_charge: float
    currency: str


class PlanPublic(_Out):
    id: str
    created: str
    job_id: str
    model: str = Field(description="Model id (GET /v1/models).")
    model_version: str | None = Field(default=None, description="The bundle's own model_id (metadata).")
    tile: TilePublic
    grid: GridPublic
    budget: BudgetPublic
    patch_probabilities: list[float]
    patches: list[PatchPublic]
    purchase: PurchasePublic
    lr_prediction: PredictionPublic = Field(description="Class predicted from the LR tile alone.")
    pricing: PricingPublic
    warnings: list[str] = Field(default_factory=list, description="Why the plan may be unreliable, if it may.")
    spend: dict[str, Any] | None = Field(
        default=None,
        description="What the money buys (the model's calibrated value model): tiles bought, price, expected "
        "accuracy with that order, with none and with full HR, the accuracy-against-spend curve; for an upload "
        "larger than one model tile also its tile grid and each tile's LR class and expected accuracies.",
    )
    links: dict[str, str]


class ClassificationPublic(_Out):
    job_id: str
    plan_id: str
    model: str
    class_: str = Field(alias="class")
    confidence: float
    probabilities: dict[str, float]
    patches_used: int = Field(description="Purchased patches whose HR pixels the classifier used.")
    purchased_patches: list[int]
    patch_coverage: dict[str, float] = Field(description="Share of each purchased patch the uploads covered.")
    files: list[str]


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


class JobPublic(_Out):
    """Any request's job: a plan, a classification or a region estimate (``kind`` says which)."""

    id: str
    kind: Literal["plan", "classify", "estimate"]
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    created: str
    finished: str | None
    error: ErrorBody | None
    result: dict[str, Any] | None = Field(
        description="When succeeded: the classification (classify jobs); for estimates the tiles planned and "
        "skipped, area and price for PatchDrop, Fixed-H at the same patch counts and full HR coverage, saving_pct "
        "and order_geojson (the merged order, WGS84); spend (when the model is calibrated): the spend-aware order "
        "for max_price / target_accuracy, its expected accuracy, with none and with full HR, and the "
        "accuracy-against-spend curve. Plan jobs link to their plan instead."
    )
    plan_id: str | None = Field(default=None, description="Plan and classify jobs: the plan made or read.")
    progress: EstimateProgressPublic | None = Field(default=None, description="Estimates: tiles and chunks done.")
    request: EstimateRequestPublic | None = Field(default=None, description="Estimates: the request as accepted.")
    warnings: list[str] = Field(
        default_factory=list,
        description="Estimates: why the result may be unreliable, e.g. a raster from another sensor than the model's.",
    )
    links: dict[str, str]
