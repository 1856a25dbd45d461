"""Errors raised by the worker layer; like the domain's, their constructors take only a message."""

from __future__ import annotations

from models.errors import PatchDropError


class UnknownModelError(PatchDropError, LookupError):
    code = "unknown_model"
