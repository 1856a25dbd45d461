"""Form fields that more than one route takes, declared once (validation and OpenAPI description)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.exceptions import RequestValidationError

from service.schemas import ErrorBody, JobPublic

TargetAccuracyForm = Annotated[
    float | None,
    Form(ge=0, le=1, description="Spend-aware order: the least price reaching this expected accuracy (0..1)."),
]
PricingForm = Annotated[
    str | None,
    Form(
        description='A preset (archive, tasking) or a JSON object of overrides: {"preset": "tasking", "price_per_km2": 25}.'
    ),
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


MULTI_VALUED = frozenset({"files"})  # the only form field a request may repeat (classify's HR uploads)


async def one_value_per_field(request: Request) -> None:
    """Refuse a form field sent more than once (two ``tile`` parts, two ``max_price`` values): the
    framework would keep the last one and silently drop the others."""
    if request.method != "POST":
        return
    kind = request.headers.get("content-type", "").lower()
    if not kind.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        return
    route = request.scope.get("route")
    declared = {p.alias for p in getattr(getattr(route, "dependant", None), "body_params", [])}
    form = await request.form()  # parsed once per request: the route reads the same form
    repeated = {name: len(form.getlist(name)) for name in declared - MULTI_VALUED if name in form}
    errors = [{"loc": (name,), "msg": f"sent {n} times; send it once"} for name, n in repeated.items() if n > 1]
    if errors:
        raise RequestValidationError(errors)
