"""Form fields that more than one route takes, declared once (validation and OpenAPI description)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Form

from service.schemas import ErrorBody, JobPublic

TargetAccuracyForm = Annotated[
    float | None,
    Form(ge=0, le=1, description="Spend-aware order: the least price reaching this expected accuracy (0..1)."),
]
PricingForm = Annotated[
    str | None,
    Form(description='A preset (archive, tasking) or a JSON object of overrides: {"preset": "tasking", "price_per_km2": 25}.'),
]
BandsForm = Annotated[
    str | None,
    Form(
        description="What each band of the file is, in file order, comma-separated: STAC common names "
        "(blue, green, red, nir) or one sensor's band labels (B5,B4,B3,B2). Unset: from the file's band "
        "metadata, descriptions or order."
    ),
]
PENDING: dict[int | str, dict[str, Any]] = {
    202: {"model": JobPublic, "description": "Not finished in time: poll the job."},
    **{code: {"model": ErrorBody} for code in (404, 413, 422, 503)},
}


def band_list(bands: str | None) -> list[str] | None:
    return bands.split(",") if bands else None
