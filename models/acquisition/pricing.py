"""What an HR order costs: orderable polygons, vendor minimums and the order total.

Vendors sell archive imagery per km² of area of interest (AOI). Each AOI
polygon must be single-part, without holes and at least a minimum width; it is
billed for at least a minimum area; the order as a whole has a minimum charge.
Buying scattered small patches can therefore cost more than the whole tile,
so selected patches are merged into polygons here and, where one covering
rectangle is cheaper than two separate polygons, merged further.

Geometry is in a metric CRS (metres); nothing here knows about rasters or files.
The figures themselves are configuration (``PricingProfile``), not code.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import shapely
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from shapely.geometry import Polygon, box

from models.errors import PricingError

_EPS_M = 1e-3  # 1 mm: tolerance when testing whether an order covers a patch


@dataclass(frozen=True)
class PricingProfile:
    """A vendor's price list for one product (e.g. 30-50 cm archive imagery)."""

    price_per_km2: float
    min_area_km2: float  # billed area of one order polygon is at least this
    min_width_m: float  # order polygons narrower than this are widened
    min_order_charge: float  # a non-empty order costs at least this
    currency: str = "USD"

    def __post_init__(self) -> None:
        for name in ("price_per_km2", "min_area_km2", "min_width_m", "min_order_charge"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise PricingError(f"pricing {name} must be a finite number >= 0, got {value!r}")
        if not self.currency:
            raise PricingError("pricing currency must be set")

    def to_dict(self) -> dict[str, float | str]:
        return asdict(self)


# Defaults modelled on public archive price lists (30-50 cm archive: USD 10-30 per km²;
# marketplace archive AOIs of 1-50 km²). The service takes every field from its
# settings (PATCHDROP_PRICING__*), so these are only the values used when none is set.
ARCHIVE_PRICE_LIST = PricingProfile(
    price_per_km2=20.0, min_area_km2=1.0, min_width_m=500.0, min_order_charge=100.0, currency="USD"
)
# Tasking (a new acquisition): 25 km² billed at least per polygon (Planet SkySat tasking,
# SkyWatch tasking: "smaller areas charged as 25 km²"), USD 32.50 per km² (SkyWatch 30 cm
# tasking list price) and a USD 500 minimum order (Planet SkySat tasking). See README, "Pricing".
TASKING_PRICE_LIST = PricingProfile(
    price_per_km2=32.5, min_area_km2=25.0, min_width_m=500.0, min_order_charge=500.0, currency="USD"
)
PRESETS: dict[str, PricingProfile] = {"archive": ARCHIVE_PRICE_LIST, "tasking": TASKING_PRICE_LIST}


def preset(name: str) -> PricingProfile:
    try:
        return PRESETS[name]
    except KeyError:
        raise PricingError(f"unknown pricing preset {name!r}; choose one of {', '.join(PRESETS)}") from None


class PricingSchema(BaseModel):
    """The one edge schema of a price list: settings, requests and worker payloads all validate here.

    ``preset`` names a built-in price list (``PRESETS``); fields given beside it override it.
    Non-finite numbers (JSON ``Infinity``/``NaN``) are refused here, not after a job ran.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # Upper bounds far above any vendor's list, in any currency (VND, IDR), keep every price and
    # area the billing engine computes finite (a 1e308 price per km² overflows on the first polygon).
    preset: str | None = Field(default=None, description="Built-in price list: " + ", ".join(PRESETS) + ".")
    price_per_km2: float = Field(
        default=ARCHIVE_PRICE_LIST.price_per_km2,
        ge=0,
        le=1e12,
        description="Price per km², in any currency's units (at most 1e12).",
    )
    min_area_km2: float = Field(
        default=ARCHIVE_PRICE_LIST.min_area_km2,
        ge=0,
        le=10_000,
        description="Each order polygon is billed at least this area (km², at most 10,000).",
    )
    min_width_m: float = Field(
        default=ARCHIVE_PRICE_LIST.min_width_m,
        ge=0,
        le=100_000,
        description="Order polygons narrower than this are widened (metres, at most 100,000).",
    )
    min_order_charge: float = Field(
        default=ARCHIVE_PRICE_LIST.min_order_charge,
        ge=0,
        le=1e15,
        description="A non-empty order costs at least this (at most 1e15).",
    )
    currency: str = Field(default=ARCHIVE_PRICE_LIST.currency, min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _from_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset") is not None:
            name = data["preset"]
            if name not in PRESETS:
                raise ValueError(f"unknown pricing preset {name!r}; choose one of {', '.join(PRESETS)}")
            return {**PRESETS[name].to_dict(), **data}
        return data

    def profile(self) -> PricingProfile:
        return PricingProfile(**self.model_dump(exclude={"preset"}))

    def with_request(self, text: str | None) -> PricingSchema:
        """This price list changed by a request's ``pricing``: a preset name, or a JSON object of
        overrides (with an optional ``"preset"``). Raises ``PricingError`` with the reason."""
        if not text:
            return self
        text = text.strip()
        if text in PRESETS:
            given: Any = {"preset": text}
        else:
            try:
                given = json.loads(text)
            except ValueError:
                raise PricingError(
                    f"pricing must be a preset ({', '.join(PRESETS)}) or a JSON object, e.g. "
                    '{"preset": "tasking", "price_per_km2": 25}'
                ) from None
            if not isinstance(given, dict):
                raise PricingError('pricing must be a preset name or a JSON object, e.g. {"price_per_km2": 25}')
        base = self.model_dump() if "preset" not in given else {}
        try:
            return PricingSchema.model_validate({**base, **given})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(v) for v in first.get("loc", ())) or "pricing"
            raise PricingError(f"pricing {where}: {first['msg']}") from None


@dataclass(frozen=True)
class OrderPolygon:
    geometry: Polygon  # metric CRS
    area_km2: float
    billable_km2: float
    price: float


@dataclass(frozen=True)
class Quote:
    polygons: tuple[OrderPolygon, ...]
    price: float  # order total, minimum charge included
    currency: str
    minimum_charge_applied: bool

    @property
    def area_km2(self) -> float:
        return sum(p.area_km2 for p in self.polygons)

    @property
    def billable_km2(self) -> float:
        return sum(p.billable_km2 for p in self.polygons)

    def covered(self, patches: Sequence[Polygon]) -> list[int]:
        """Ids of the patches this order covers completely (patches in the same metric CRS)."""
        if not self.polygons:
            return []
        union = shapely.union_all([p.geometry for p in self.polygons]).buffer(_EPS_M, quad_segs=1)
        shapely.prepare(union)
        return [int(i) for i in np.flatnonzero(shapely.covers(union, np.asarray(patches, dtype=object)))]


def _narrow_side(poly: Polygon) -> tuple[float, Polygon | None]:
    """Width of a polygon (short side of its minimum rotated rectangle) and that rectangle."""
    minx, miny, maxx, maxy = poly.bounds
    # Fast path: an axis-aligned rectangle (patch unions in a metric tile CRS) is its own
    # minimum rectangle, and its width is the short side of its bounding box.
    if abs((maxx - minx) * (maxy - miny) - poly.area) <= 1e-9 * max(poly.area, 1.0):
        return min(maxx - minx, maxy - miny), None
    rect = poly.minimum_rotated_rectangle
    (x0, y0), (x1, y1), (x2, y2) = list(rect.exterior.coords)[:3] if isinstance(rect, Polygon) else [(0, 0)] * 3
    return min(math.hypot(x1 - x0, y1 - y0), math.hypot(x2 - x1, y2 - y1)), rect


def widen(poly: Polygon, min_width: float) -> Polygon:
    """The polygon, grown across its narrow side to ``min_width`` when it is narrower.

    Width is the short side of the minimum rotated rectangle; the rectangle is
    widened symmetrically about its centre line and joined to the polygon.
    """
    if min_width <= 0:
        return poly
    width, rect = _narrow_side(poly)
    if width >= min_width - _EPS_M:
        return poly
    if rect is None:
        rect = box(*poly.bounds)
    if not isinstance(rect, Polygon):  # degenerate (a line or a point)
        return poly.buffer(min_width / 2, join_style="mitre")
    (x0, y0), (x1, y1), (x2, y2) = list(rect.exterior.coords)[:3]
    e0 = (x1 - x0, y1 - y0)
    e1 = (x2 - x1, y2 - y1)
    len0, len1 = math.hypot(*e0), math.hypot(*e1)
    short, short_len, long_, long_len = (e0, len0, e1, len1) if len0 <= len1 else (e1, len1, e0, len0)
    cx, cy = rect.centroid.x, rect.centroid.y
    if short_len > 0:
        sx, sy = short[0] / short_len, short[1] / short_len
    else:
        sx, sy = (-long_[1] / long_len, long_[0] / long_len) if long_len else (1.0, 0.0)
    lx, ly = (long_[0] / long_len, long_[1] / long_len) if long_len else (-sy, sx)
    half_s, half_l = min_width / 2, max(long_len, min_width) / 2
    corners = [
        (cx + a * half_l * lx + b * half_s * sx, cy + a * half_l * ly + b * half_s * sy)
        for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1))
    ]
    return shapely.union(poly, Polygon(corners))


def _single_parts(geom: shapely.Geometry) -> list[Polygon]:
    """Polygons of a (multi)polygon with their holes filled: orderable AOIs are hole-free."""
    parts = getattr(geom, "geoms", [geom])
    return [Polygon(p.exterior) if p.interiors else p for p in parts if isinstance(p, Polygon) and not p.is_empty]


def orderable_polygons(geoms: Iterable[Polygon], min_width: float) -> list[Polygon]:
    """Merge, fill holes, widen narrow parts; repeat until widening changes nothing."""
    geoms = list(geoms)
    parts = geoms if len(geoms) == 1 and not geoms[0].interiors else _single_parts(shapely.union_all(geoms))
    for _ in range(16):
        widened = [widen(p, min_width) for p in parts]
        if all(w is p for w, p in zip(widened, parts, strict=True)):
            return parts  # nothing was narrow: the parts are already disjoint and hole-free
        parts = _single_parts(shapely.union_all(widened))
    return parts


def _priced(poly: Polygon, profile: PricingProfile) -> OrderPolygon:
    area = poly.area / 1e6
    billable = max(area, profile.min_area_km2)
    return OrderPolygon(poly, area, billable, billable * profile.price_per_km2)


def _subtotal(polys: Sequence[Polygon], profile: PricingProfile) -> float:
    return sum(_priced(p, profile).price for p in polys)


def _merge_cheaper(polys: list[Polygon], profile: PricingProfile) -> list[Polygon]:
    """Greedily replace two polygons by one covering rectangle while that lowers the subtotal."""
    while len(polys) > 1:
        current = _subtotal(polys, profile)
        best: tuple[float, list[Polygon]] | None = None
        for i in range(len(polys)):
            for j in range(i + 1, len(polys)):
                envelope = box(*shapely.union(polys[i], polys[j]).bounds)
                # Cheap lower bound first: the pair's own saving, ignoring overlaps with others.
                pair = _priced(polys[i], profile).price + _priced(polys[j], profile).price
                if _priced(envelope, profile).price >= pair - 1e-9:
                    continue
                rest = [p for k, p in enumerate(polys) if k not in (i, j)]
                candidate = orderable_polygons([*rest, envelope], profile.min_width_m)
                cost = _subtotal(candidate, profile)
                if cost < current - 1e-9 and (best is None or cost < best[0]):
                    best = (cost, candidate)
        if best is None:
            break
        polys = best[1]
    return polys


def bill(polys: Sequence[Polygon], profile: PricingProfile) -> Quote:
    """The order total for polygons that are already orderable: minimum area per polygon, minimum charge.

    The one place where money is computed: single-tile quotes, region estimates and
    spend-aware plans all end here.
    """
    if not len(polys):
        return Quote((), 0.0, profile.currency, False)
    priced = tuple(_priced(p, profile) for p in sorted(polys, key=lambda p: (-p.bounds[3], p.bounds[0])))
    subtotal = sum(p.price for p in priced)
    total = max(subtotal, profile.min_order_charge)
    return Quote(priced, round(total, 2), profile.currency, total > subtotal)


def quote(geoms: Sequence[Polygon], profile: PricingProfile) -> Quote:
    """Price an order for the given footprints (metric CRS), minimums applied."""
    if not geoms:
        return Quote((), 0.0, profile.currency, False)
    polys = _merge_cheaper(orderable_polygons(geoms, profile.min_width_m), profile)
    return bill([p.simplify(0) for p in polys], profile)  # simplify: drop collinear vertices left by the union


def grid_orderable(polys: np.ndarray, min_width: float) -> list[Polygon]:
    """Orderable AOIs from many disjoint polygons: holes filled, narrow ones widened, merged; repeated.

    ``orderable_polygons`` with the width measured on the bounding box, vectorised: for
    ~10^5 patch polygons its per-polygon minimum rotated rectangle and repeated unions of
    detailed shapes take minutes. A polygon narrower than ``min_width`` is replaced by its
    bounding box grown to ``min_width``, which contains it, so the union works on
    rectangles. (The pair-wise "one covering rectangle is cheaper" merge of single-tile
    quotes is O(n²) and is not applied to region orders.)
    """
    geoms = shapely.polygons(shapely.get_exterior_ring(np.asarray(polys, dtype=object)))
    # A part lying in another part's hole is inside that part's hole-free polygon: bought once, not twice.
    tree = shapely.STRtree(geoms)
    outer, inner = tree.query(geoms, predicate="contains")
    nested = np.unique(inner[outer != inner])
    if nested.size:
        geoms = np.delete(geoms, nested)
    for _ in range(16):
        b = shapely.bounds(geoms)
        w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        narrow = np.minimum(w, h) < min_width - 1e-3
        if not narrow.any():
            break
        cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
        half_w, half_h = np.maximum(w, min_width) / 2, np.maximum(h, min_width) / 2
        geoms = geoms.copy()
        geoms[narrow] = shapely.box(cx - half_w, cy - half_h, cx + half_w, cy + half_h)[narrow]
        merged = shapely.union_all(geoms)
        parts = [p for p in getattr(merged, "geoms", [merged]) if p.geom_type == "Polygon" and not p.is_empty]
        geoms = shapely.polygons(shapely.get_exterior_ring(np.asarray(parts, dtype=object)))
    return [p.simplify(0) for p in geoms]
