"""One settings object for the API (and, through ``WorkerSettings``, the worker).

Environment variables ``PATCHDROP_*`` (nested with ``__``, e.g.
``PATCHDROP_PRICING__PRICE_PER_KM2=25``); ``REDIS_URL`` switches to Celery mode.
Built by ``get_settings()`` when the app is created, never at import time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from models.acquisition.pricing import PricingProfile, PricingSchema
from worker.payloads import PricingPayload
from worker.settings import WorkerSettings

MiB = 1024 * 1024
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_KEY_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")


class PricingSettings(PricingSchema):
    """The service's price list: ``PATCHDROP_PRICING__PRESET`` (archive, tasking) and/or each field
    (``PATCHDROP_PRICING__PRICE_PER_KM2``...); a request's ``pricing`` changes it per request."""

    def profile(self) -> PricingProfile:
        return PricingSchema.profile(self)

    def payload(self) -> PricingPayload:
        return PricingPayload.model_validate(self.model_dump())

    def for_request(self, text: str | None) -> PricingPayload:
        """The price list a request's ``pricing`` (preset name or JSON overrides) asks for; ``PricingError``
        says why one is refused. The API and the CLI both call this."""
        return PricingPayload.model_validate(self.with_request(text).model_dump())


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
    batch_requests: bool = Field(
        default=True,
        description="Embedded mode: plans from concurrent requests share one batched model forward (no timer: "
        "a lone request runs at once).",
    )
    data_root: Path | None = Field(
        default=None,
        description="Folder whose rasters region estimates may name by path (relative to it); unset: none.",
    )
    source_url_prefixes: list[str] = Field(
        default_factory=list,
        description="http(s):// or s3:// prefixes of COGs region estimates may name, as JSON; empty: no URLs.",
    )
    upload_dir: Path = Field(
        default=Path("data/uploads"),
        description="Where rasters uploaded for region estimates are kept (Celery workers must see this path).",
    )
    estimate_chunk_tiles: int = Field(
        default=4096, ge=1, description="Tiles per region-estimate chunk (one Celery task each)."
    )
    estimate_stall_s: float = Field(
        default=900.0,
        gt=0,
        description="Celery mode: an estimate with no chunk stored for this long has its missing chunks sent "
        "again when it is polled (a worker killed at the wrong moment can lose a task; resending is harmless).",
    )
    environment: Literal["development", "production"] = Field(
        default="development",
        description="production refuses to start without API keys (docker-compose.yml runs in production).",
    )
    api_keys: dict[str, str] = Field(
        default_factory=dict,
        description='Tenants and the SHA-256 of their API key, as JSON: {"acme": "sha256:<64 hex>"} '
        "(python -m service.security new-key acme). Empty: no keys, every request is the tenant 'public'.",
    )
    public_docs: bool = Field(
        default=False,
        description="Serve /docs, /redoc and /openapi.json without a key even when API keys are configured "
        "(off: they need a key like the API).",
    )
    max_region_km2: float = Field(
        default=15_000.0,
        gt=0,
        description="Largest region an estimate may cover, km² on the ellipsoid (a Sentinel-2 tile is ~12,000).",
    )
    max_region_tiles: int = Field(
        default=500_000, ge=1, description="Most LR tiles an estimate may plan (its work and result size)."
    )
    request_timeout_s: float = Field(
        default=120.0,
        gt=0,
        description="Longest a request may take, body upload included (slow clients get 408, slow answers 503).",
    )

    @model_validator(mode="after")
    def _check(self) -> Settings:
        self.pricing.profile()  # refuse an invalid price list at start-up, not on the first request
        if self.default_model not in self.models:
            raise ValueError(f"default_model {self.default_model!r} is not among models {sorted(self.models)}")
        for tenant, key_hash in self.api_keys.items():
            if not _TENANT.match(tenant) or tenant == "public":
                raise ValueError(f"api_keys: tenant id {tenant!r} must match {_TENANT.pattern} and not be 'public'")
            if not _KEY_HASH.match(key_hash):
                # Refuses plaintext keys in the configuration: only their hashes belong there.
                raise ValueError(f"api_keys[{tenant!r}] must be 'sha256:<64 hex digits>', not the key itself")
        if self.environment == "production" and not self.api_keys:
            raise ValueError("production needs API keys: set PATCHDROP_API_KEYS (python -m service.security new-key)")
        if self.request_timeout_s <= self.job_wait_s:
            raise ValueError(
                f"request_timeout_s ({self.request_timeout_s:g}) must exceed job_wait_s ({self.job_wait_s:g}), "
                "or requests time out before they can answer 202"
            )
        return self

    @property
    def mode(self) -> str:
        return "celery" if self.redis_url else "embedded"


def get_settings() -> Settings:
    return Settings()
