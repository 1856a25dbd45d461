"""Domain errors with stable machine-readable codes.

Constructors take only a message, so the errors survive a round trip through
Celery's JSON serializer; the HTTP edge maps ``code`` to a status in one table.
"""

from __future__ import annotations


class PatchDropError(Exception):
    code = "patchdrop_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        # The failed job's id, when the error ended a job the request had recorded: the error
        # response names it (``X-Job-Id``), so the record is never one nobody can find.
        self.job_id: str | None = None


class CheckpointError(PatchDropError, ValueError):
    code = "invalid_checkpoint"


class InvalidRasterError(PatchDropError, ValueError):
    code = "invalid_raster"


class WrongBandCountError(InvalidRasterError):
    code = "wrong_band_count"


class EmptyRasterError(InvalidRasterError):
    code = "empty_raster"


class GridError(PatchDropError, ValueError):
    code = "invalid_grid"


class BudgetError(PatchDropError, ValueError):
    code = "invalid_budget"


class DatasetNotFoundError(PatchDropError, FileNotFoundError):
    code = "dataset_not_found"


class TileTooLargeError(InvalidRasterError):
    code = "tile_too_large"


class BandMismatchError(InvalidRasterError):
    code = "wrong_bands"


class CoverageError(InvalidRasterError):
    """HR imagery that does not cover the patches a plan bought."""

    code = "hr_not_covering"


class PricingError(PatchDropError, ValueError):
    code = "invalid_pricing"


class InvalidDatasetError(PatchDropError, ValueError):
    code = "invalid_dataset"


class RegionError(PatchDropError, ValueError):
    """A region that is not a usable polygon, or that does not overlap the raster."""

    code = "invalid_region"


class RegionTooLargeError(RegionError):
    """A region over the operator's area or tile-count limit."""

    code = "region_too_large"


class DeviceUnavailableError(PatchDropError, RuntimeError):
    """The configured torch device is not on this machine (or not a device at all)."""

    code = "device_unavailable"


class ValueModelError(CheckpointError):
    """A bundle's value model (``models.acquisition.spend``) that is malformed or cannot be fitted."""

    code = "invalid_checkpoint"


class UncalibratedModelError(CheckpointError):
    """A spend-aware request (a multi-tile plan, ``target_accuracy``) for a bundle without a value model."""

    code = "invalid_checkpoint"
