"""Plan previews: the LR tile in true colour with the patch grid and the patches to buy.

``to_rgb`` turns band values into a small 8-bit image (done once, when the plan
is made); ``render_preview`` draws a PNG from it. Matplotlib is used without
pyplot, so rendering is thread-safe. It is imported with this module, in the
thread that starts the process, not by the first preview request: its import
parses its settings with ``ast``, which on CPython 3.11 can fail spuriously
when another thread builds an AST at the same moment (gh-106905). Imports no
torch: the API process draws previews without loading a model.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

TRUE_COLOUR = ("B04", "B03", "B02")


def _key(name: str) -> str:
    text = name.strip().upper()
    if text.startswith("B") and text[1:].isdigit():
        return f"B{int(text[1:]):02d}"
    return text


def to_rgb(bands: np.ndarray, band_names: Sequence[str], low: float = 2.0, high: float = 98.0) -> np.ndarray:
    """(bands, h, w) values (NaN = nodata) -> (h, w, 3) uint8, percentile-stretched per channel.

    Uses B04/B03/B02 when present, else the first band as grey.
    """
    keys = [_key(n) for n in band_names]
    if all(k in keys for k in TRUE_COLOUR):
        channels = bands[[keys.index(k) for k in TRUE_COLOUR]]
    else:
        channels = np.repeat(bands[:1], 3, axis=0)
    flat = channels.reshape(3, -1).astype(np.float64)
    finite = np.isfinite(flat)
    if finite.all():
        lo, hi = np.percentile(flat, [low, high], axis=1)
    elif finite.any():
        lo, hi = np.nanpercentile(flat, [low, high], axis=1)
    else:
        return np.zeros((*channels.shape[1:], 3), dtype=np.uint8)
    span = np.where(hi > lo, hi - lo, 1.0)
    scaled = np.where((hi > lo)[:, None], (flat - lo[:, None]) / span[:, None], 0.5)
    out = np.nan_to_num(np.clip(scaled, 0, 1) * 255, nan=0).astype(np.uint8).reshape(channels.shape)
    return np.moveaxis(out, 0, -1)


def render_preview(
    rgb: np.ndarray,
    rows: int,
    cols: int,
    probabilities: Sequence[float],
    selected: Sequence[int],
    title: str = "",
    size_px: int = 512,
) -> bytes:
    """PNG bytes: the tile, the patch grid with each patch's probability, bought patches outlined."""
    h, w = rgb.shape[:2]
    dpi = 100
    fig = Figure(figsize=(size_px / dpi, size_px / dpi * 1.12), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.86))
    ax.imshow(rgb, interpolation="nearest", extent=(0, w, h, 0))
    ph, pw = h / rows, w / cols
    chosen = set(selected)
    for pid in range(rows * cols):
        r, c = divmod(pid, cols)  # row-major patch ids, row 0 at the top
        bought = pid in chosen
        ax.add_patch(
            Rectangle(
                (c * pw, r * ph),
                pw,
                ph,
                fill=False,
                edgecolor="#ff3b30" if bought else "white",
                linewidth=3 if bought else 0.6,
                alpha=1.0 if bought else 0.7,
                zorder=3 if bought else 2,
            )
        )
        ax.text(
            (c + 0.5) * pw,
            (r + 0.5) * ph,
            f"{pid}\n{probabilities[pid]:.2f}",
            ha="center",
            va="center",
            fontsize=8,
            color="white",
            fontweight="bold" if bought else "normal",
            bbox={"facecolor": "#ff3b30" if bought else "black", "alpha": 0.55, "pad": 1.5, "linewidth": 0},
        )
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=9, y=0.985, va="top")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
