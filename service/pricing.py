"""A request's price list: the service's one, changed by the request's ``pricing`` field."""

from __future__ import annotations

from fastapi.exceptions import RequestValidationError

from models.errors import PricingError
from service.settings import Settings
from worker.payloads import PricingPayload


def request_pricing(settings: Settings, text: str | None) -> PricingPayload:
    """Preset name or JSON overrides; refused as a 422 on the ``pricing`` field before any work runs."""
    try:
        return settings.pricing.for_request(text)
    except PricingError as exc:
        raise RequestValidationError([{"loc": ("pricing",), "msg": str(exc)}]) from exc
