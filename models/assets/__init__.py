"""Files shipped with the package: the default model bundle and the Sentinel-2 samples."""

from pathlib import Path

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "default.pt"
