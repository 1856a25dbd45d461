"""One settings object for the API (and, through ``WorkerSettings``, the worker).

Environment variables ``PATCHDROP_*`` (nested with ``__``, e.g.
``PATCHDROP_PRICING__PRICE_PER_KM2=25``); ``REDIS_URL`` switches to Celery mode.
Built by ``get_settings()`` when the app is created, never at import time.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, model_validator

from models.pricing import ARCHIVE_PRICE_LIST, PricingProfile
from worker.payloads import PricingPayload
from worker.settings import WorkerSettings

MiB = 1024 * 1024


class PricingSettings(BaseModel):
    """The pricing profile (defaults modelled on public archive price lists for 30-50 cm imagery)."""

    price_per_km2: float = Field(
        default=ARCHIVE_PRICE_LIST.price_per_km2, ge=0, description="Price per km² of ordered area."
    )
    min_area_km2: float = Field(
        default=ARCHIVE_PRICE_LIST.min_area_km2,
        ge=0,
        description="Each order polygon is billed for at least this area (archive AOIs: about 1 km²).",
    )
    min_width_m: float = Field(
        default=ARCHIVE_PRICE_LIST.min_width_m,
        ge=0,
        description="Order polygons narrower than this are widened to it.",
    )
    min_order_charge: float = Field(
        default=ARCHIVE_PRICE_LIST.min_order_charge, ge=0, description="A non-empty order costs at least this."
    )
    currency: str = Field(default=ARCHIVE_PRICE_LIST.currency, min_length=1)

    def profile(self) -> PricingProfile:
        return PricingProfile(**self.model_dump())

    def payload(self) -> PricingPayload:
        return PricingPayload(**self.model_dump())


class Settings(WorkerSettings):
    db_path: Path = Field(
        default=Path("data/patchdrop.sqlite3"),
        description="SQLite file holding plans and jobs in the embedded mode (no REDIS_URL).",
    )
    redis_prefix: str = Field(default="patchdrop", description="Key prefix of plans and jobs in Redis.")
    max_upload_bytes: int = Field(
        default=32 * MiB, gt=0, description="Largest request body accepted; enforced while the upload streams."
    )
    max_tile_pixels: int = Field(
        default=25_000_000, gt=0, description="Largest raster (width x height, native pixels) decoded."
    )
    pricing: PricingSettings = Field(default_factory=PricingSettings)
    job_wait_s: float = Field(
        default=30.0,
        gt=0,
        description="How long a request waits for its Celery task; after that it answers 202 with the job.",
    )
    min_patch_coverage: float = Field(
        default=0.98, gt=0, le=1, description="Share of a purchased patch the HR upload must cover."
    )
    thumbnail_px: int = Field(default=256, ge=16, le=2048, description="Longest side of stored previews.")
    preload_models: bool = Field(default=True, description="Embedded mode: load the models when the app starts.")

    @model_validator(mode="after")
    def _check(self) -> Settings:
        self.pricing.profile()  # refuse an invalid price list at start-up, not on the first request
        if self.default_model not in self.models:
            raise ValueError(f"default_model {self.default_model!r} is not among models {sorted(self.models)}")
        return self

    @property
    def mode(self) -> str:
        return "celery" if self.redis_url else "embedded"


def get_settings() -> Settings:
    return Settings()
