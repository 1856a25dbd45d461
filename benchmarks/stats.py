"""Statistics shared by the benchmarks."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def paired(a: Any, b: Any, scale: float = 1.0, ndigits: int = 4) -> dict[str, float]:
    """Mean of ``a - b`` over the same items (times ``scale``) and its standard error from the
    per-item differences: far smaller than either accuracy's own error when both err on the same items."""
    d = (np.asarray(a, np.float64) - np.asarray(b, np.float64)) * scale
    return {"diff": round(float(d.mean()), ndigits), "se": round(float(d.std(ddof=1)) / math.sqrt(len(d)), ndigits)}
