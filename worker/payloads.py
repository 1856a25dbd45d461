"""JSON payloads of the worker's tasks: what the API sends and the worker validates.

Bytes travel base64-encoded (Celery runs with the JSON serializer only).
Importing this module loads no torch, so the API builds payloads with it.
"""

from __future__ import annotations

import base64

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from models.acquisition.pricing import PricingSchema


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def encode_array(array: np.ndarray) -> dict:
    array = np.ascontiguousarray(array)
    return {"dtype": array.dtype.str, "shape": list(array.shape), "data": b64encode(array.tobytes())}


def decode_array(obj: dict) -> np.ndarray:
    return np.frombuffer(b64decode(obj["data"]), dtype=np.dtype(obj["dtype"])).reshape(obj["shape"]).copy()


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")


PricingPayload = PricingSchema  # one schema for a price list, wherever it is validated


class PlanPayload(_Payload):
    plan_id: str
    model: str | None = None
    filename: str = "tile.tif"
    tile: str  # base64 GeoTIFF bytes
    max_patches: int | None = None
    max_price: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    target_accuracy: float | None = Field(default=None, ge=0, le=1)
    pricing: PricingPayload
    max_tile_pixels: int | None = None
    thumbnail_px: int = 256
    bands: list[str] | None = None  # what each band of the file is, in file order (models.geo.bands)


class FilePayload(_Payload):
    filename: str
    data: str  # base64


class ClassifyPayload(_Payload):
    plan_id: str
    model: str
    crs: str
    transform: list[float]  # the LR tile's native geotransform (6 numbers)
    width: int  # the LR tile's native size in pixels
    height: int
    lr_input: dict  # encode_array of the LR model input (bands, h, w) float32
    purchased: list[int]
    files: list[FilePayload]
    min_patch_coverage: float = Field(default=0.98, gt=0, le=1)
    max_tile_pixels: int | None = None
