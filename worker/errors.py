"""Errors raised by the worker layer; like the domain's, their constructors take only a message."""

from __future__ import annotations

from models.errors import InvalidRasterError, PatchDropError


class UnknownModelError(PatchDropError, LookupError):
    code = "unknown_model"


class TileTooSmallError(InvalidRasterError):
    """A tile with fewer native pixels than the patch grid has patches along a side."""

    code = "tile_too_small"
