"""Worker settings (pydantic-settings, environment variables ``PATCHDROP_*``).

The service's settings extend this class, so one object configures both layers.
Nothing is read at import time: call ``WorkerSettings()`` (or the service's
``get_settings()``) when the process starts.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.assets import DEFAULT_CHECKPOINT


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PATCHDROP_", env_nested_delimiter="__", extra="ignore", populate_by_name=True
    )

    redis_url: str | None = Field(
        default=None,
        pattern=r"^((redis|rediss|unix)://.*)?$",  # empty: unset
        validation_alias=AliasChoices("redis_url", "PATCHDROP_REDIS_URL", "REDIS_URL"),
        description="Redis URL used as Celery broker, result backend and plan store. "
        "Unset: the API runs the tasks in process and stores plans in SQLite.",
    )
    models: dict[str, Path] = Field(
        default_factory=lambda: {"default": DEFAULT_CHECKPOINT},
        description='Model bundles by id, as JSON: {"default": "models/assets/default.pt", ...}.',
    )
    default_model: str = Field(default="default", description="Model id used when a request names none.")
    device: str = Field(
        default="auto",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
        description="torch device for inference: auto (CUDA when available), cpu, cuda:0, ... "
        "(a GPU the machine lacks is refused when the worker starts).",
    )
    torch_threads: int | None = Field(
        default=None, ge=1, description="torch intra-op threads per process (unset: torch's default, one per core)."
    )
    queue: str = Field(default="patchdrop", description="Celery queue the API sends to and the worker consumes.")
    visibility_timeout_s: float = Field(
        default=3600.0,
        gt=0,
        description="Seconds before Redis hands an unacknowledged task (its worker died) to another worker.",
    )
