"""Errors of the HTTP edge and the one table mapping error codes to HTTP statuses.

Domain code raises plain ``PatchDropError`` subclasses; ``register_error_handlers``
turns each into ``{"code", "detail"}`` with the status from ``STATUS_BY_CODE``.
Adding an error is one line in the table. No route translates errors itself.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from models.errors import PatchDropError
from worker.errors import UnknownModelError  # noqa: F401  (imported so Celery can rebuild it from a result)

log = logging.getLogger(__name__)


class PlanNotFoundError(PatchDropError, LookupError):
    code = "plan_not_found"


class JobNotFoundError(PatchDropError, LookupError):
    code = "job_not_found"


class UploadTooLargeError(PatchDropError, ValueError):
    code = "upload_too_large"


class MissingUploadError(PatchDropError, ValueError):
    code = "missing_upload"


class BrokerUnavailableError(PatchDropError, ConnectionError):
    code = "broker_unavailable"


class JobFailedError(PatchDropError, RuntimeError):
    code = "job_failed"


class SourceNotAllowedError(PatchDropError, PermissionError):
    """A raster reference outside the data root or the allowed URL prefixes."""

    code = "source_not_allowed"


class SourceNotFoundError(PatchDropError, FileNotFoundError):
    code = "source_not_found"


class EstimateNotReadyError(PatchDropError, RuntimeError):
    code = "estimate_not_ready"


class UnauthorizedError(PatchDropError, PermissionError):
    code = "unauthorized"


class StoreUnavailableError(PatchDropError, ConnectionError):
    code = "store_unavailable"


class BodyTimeoutError(PatchDropError, TimeoutError):
    code = "body_timeout"


class RequestTimeoutError(PatchDropError, TimeoutError):
    code = "request_timeout"


STATUS_BY_CODE: dict[str, int] = {
    # the request itself
    "invalid_request": 422,
    "malformed_request": 400,  # a body the server cannot even parse (e.g. multipart without a boundary)
    "missing_upload": 422,
    "upload_too_large": 413,
    "invalid_budget": 422,
    "unknown_model": 422,
    "unauthorized": 401,
    "body_timeout": 408,
    # the uploaded rasters
    "invalid_raster": 422,
    "wrong_band_count": 422,
    "wrong_bands": 422,
    "empty_raster": 422,
    "tile_too_large": 413,
    "tile_too_small": 422,
    "region_too_large": 413,
    "hr_not_covering": 422,
    "invalid_grid": 422,
    "invalid_region": 422,
    "source_not_allowed": 403,
    "source_not_found": 404,
    "estimate_not_ready": 409,
    # resources
    "plan_not_found": 404,
    "job_not_found": 404,
    "not_found": 404,
    "method_not_allowed": 405,
    # the server's side
    "invalid_checkpoint": 503,
    "device_unavailable": 503,  # a worker configured for a GPU it lacks (refused at start, before any request)
    "broker_unavailable": 503,
    "store_unavailable": 503,
    "request_timeout": 503,
    "invalid_pricing": 500,
    "job_failed": 500,
    "internal_error": 500,
}


def error_response(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"code": code, "detail": detail}, headers=headers)


def status_for(code: str) -> int:
    return STATUS_BY_CODE.get(code, 500)


async def _domain_error(_: Request, exc: PatchDropError) -> JSONResponse:
    status = status_for(exc.code)
    if status >= 500:
        log.error("%s: %s", exc.code, exc.message)
    return error_response(status, exc.code, exc.message, {"X-Job-Id": exc.job_id} if exc.job_id else None)


async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {400: "malformed_request", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail))


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg", "invalid")))
    return "; ".join(parts) or "invalid request"


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    return error_response(422, "invalid_request", _describe_validation(exc))


async def _unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "internal error; the server log has the details")


async def _redis_unreachable(_: Request, exc: Exception) -> JSONResponse:
    # Redis is both the store and the queue in the Celery mode: whichever call met the outage,
    # the client is told the same thing, and accepted plans and jobs are not lost (Redis persists).
    log.error("Redis unreachable: %s", exc)
    err = StoreUnavailableError("the plan store and task queue (Redis) are unreachable; retry in a few seconds")
    return error_response(status_for(err.code), err.code, err.message)


def _register_redis_errors(app: FastAPI) -> None:
    """Redis and kombu connection errors answer 503 wherever they are raised (imported only here)."""
    from kombu.exceptions import OperationalError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    for cls in (RedisConnectionError, RedisTimeoutError, OperationalError):
        app.add_exception_handler(cls, _redis_unreachable)


def register_error_handlers(app: FastAPI) -> None:
    _register_redis_errors(app)
    app.add_exception_handler(PatchDropError, _domain_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected_error)
