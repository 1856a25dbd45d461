"""Spend-aware purchase plans: the most expected accuracy per unit of money under vendor rules.

Two parts, both pure (numpy, and GDAL to label grid components; no torch, files or settings):

* ``ValueModel``: per tile, the probability that the LR-only prediction is right and
  that the prediction with the tile's HR imagery is right, as a function of one
  feature of the tile (the LR classifier's margin, the policy's mean patch
  probability, ...). Fitted by binning on the validation split (``fit_value_model``),
  so its averages are calibrated there; ``models.training.spend_calibrate`` stores it in a
  model bundle's metadata.
* ``plan_spend``: which tiles of a tile grid to buy, jointly, as orderable polygons.
  A vendor bills each order polygon for at least ``min_area_km2`` and at least
  ``min_width_m`` wide, so an isolated 320 m tile costs as much as ten tiles bought
  together (25 km² under tasking): the plan gains money by buying the tiles where HR
  changes the answer, in contiguous groups. Candidates are grown from thresholds on
  the expected gain, closed morphologically (so nearby tiles join one polygon), and
  their connected groups ranked by gain per estimated price; every candidate kept is
  priced by the one billing engine (``price_mask``, i.e. ``models.acquisition.pricing.bill``) and
  the plan is the candidate with the most expected accuracy whose exact price fits
  ``max_price`` (or the cheapest one reaching ``target_accuracy``). The candidate set
  does not depend on the budget, so a larger budget never gives a lower expected
  accuracy, and a plan never costs more than the budget.

Patches inside a tile are not bought separately: a model tile (320 m) is narrower
than the 500 m minimum width and far below the 1 km² minimum area, so a sub-tile
purchase is billed as much as the tile (or more) under both presets.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.acquisition.pricing import PricingProfile
from models.errors import BudgetError, ValueModelError
from models.geo.raster import fill_polygon_holes, label_components

FEATURES = ("lr_margin", "lr_max", "lr_entropy", "policy_mean", "policy_max", "policy_count")
LR_FEATURES = ("lr_margin", "lr_max", "lr_entropy")  # need the LR classifier's probabilities
CLOSING_RADII = (0, 1, 2, 3)  # closing radius r (tiles): gaps up to 2r tiles between wanted tiles are bought
N_THRESHOLDS = 16
MAX_EXACT = 60  # candidates priced exactly (polygons + billing engine)


def tile_features(policy_probs: np.ndarray, lr_probs: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-tile features from (N, P) policy probabilities and optional (N, C) LR class probabilities.

    Larger means "HR is more likely to change the answer" for every feature: the LR ones
    are negated confidences.
    """
    pp = np.asarray(policy_probs, np.float64)
    out = {
        "policy_mean": pp.mean(axis=1),
        "policy_max": pp.max(axis=1),
        "policy_count": (pp >= 0.5).sum(axis=1).astype(np.float64),
    }
    if lr_probs is not None:
        lp = np.clip(np.asarray(lr_probs, np.float64), 1e-12, 1.0)
        top2 = np.sort(lp, axis=1)[:, -2:]
        out["lr_margin"] = -(top2[:, 1] - top2[:, 0])
        out["lr_max"] = -top2[:, 1]
        out["lr_entropy"] = -(lp * np.log(lp)).sum(axis=1)
    return out


@dataclass(frozen=True)
class ValueModel:
    """Binned P(LR right) and P(HR right) against one tile feature (bins by validation quantiles)."""

    feature: str
    edges: tuple[float, ...]  # inner bin edges, ascending (len = bins - 1)
    p_lr: tuple[float, ...]
    p_hr: tuple[float, ...]
    counts: tuple[int, ...]
    info: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        n = len(self.p_lr)
        if self.feature not in FEATURES:
            raise ValueModelError(f"unknown value-model feature {self.feature!r}")
        if not (n >= 1 and len(self.p_hr) == n and len(self.counts) == n and len(self.edges) == n - 1):
            raise ValueModelError("value model: bins, edges and probabilities disagree in length")

    def predict(self, features: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(P(LR right), P(HR right)) per tile."""
        if self.feature not in features:
            raise ValueModelError(f"the value model needs the feature {self.feature!r}")
        b = np.searchsorted(np.asarray(self.edges), np.asarray(features[self.feature]), side="right")
        return np.asarray(self.p_lr)[b], np.asarray(self.p_hr)[b]

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "edges": list(self.edges),
            "p_lr": list(self.p_lr),
            "p_hr": list(self.p_hr),
            "counts": list(self.counts),
            "info": self.info,
        }

    @classmethod
    def of_bundle(cls, metadata: dict[str, Any], lr_available: bool = True) -> ValueModel | None:
        """A bundle's value model for the features at hand: all of them (the LR classifier ran) or the
        policy's only (region estimates); None for a bundle that was never calibrated."""
        d = metadata.get("value_model" if lr_available else "value_model_policy")
        return cls.from_dict(d) if d else None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ValueModel:
        try:
            return cls(
                str(d["feature"]),
                tuple(float(v) for v in d["edges"]),
                tuple(float(v) for v in d["p_lr"]),
                tuple(float(v) for v in d["p_hr"]),
                tuple(int(v) for v in d["counts"]),
                dict(d.get("info") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueModelError(f"malformed value model: {exc}") from exc


def fit_bins(feature: np.ndarray, lr_right: np.ndarray, hr_right: np.ndarray, name: str, bins: int) -> ValueModel:
    """Quantile bins of ``feature`` (ties kept in one bin), each with its mean LR and HR correctness."""
    x = np.asarray(feature, np.float64)
    qs = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1]))
    edges = qs[(qs > x.min()) & (qs <= x.max())]
    b = np.searchsorted(edges, x, side="right")
    counts = np.bincount(b, minlength=len(edges) + 1)
    keep = counts > 0
    edges = edges[keep[1:]] if len(edges) else edges  # an empty bin's lower edge goes with it
    b = np.searchsorted(edges, x, side="right")
    counts = np.bincount(b, minlength=len(edges) + 1)
    # A pseudo-count of one tile at the overall rate keeps a small bin from reading 0 % or 100 %.
    lr_rate, hr_rate = lr_right.mean(), hr_right.mean()
    p_lr = (np.bincount(b, lr_right, len(counts)) + lr_rate) / (counts + 1)
    p_hr = (np.bincount(b, hr_right, len(counts)) + hr_rate) / (counts + 1)
    return ValueModel(name, tuple(edges.tolist()), tuple(p_lr.tolist()), tuple(p_hr.tolist()), tuple(counts.tolist()))


def gain_curve_score(pred_gain: np.ndarray, lr_right: np.ndarray, hr_right: np.ndarray, upto: float = 0.4) -> float:
    """Mean accuracy gained when buying the first 1..upto·N tiles by predicted gain, over the oracle's.

    1.0: the value model ranks as well as knowing the answers; 0: no better than buying nothing.
    """
    gain = hr_right.astype(np.float64) - lr_right.astype(np.float64)
    k = max(1, int(round(upto * len(gain))))
    ours = np.cumsum(gain[np.argsort(-pred_gain, kind="stable")])[:k].mean()
    best = np.cumsum(np.sort(gain)[::-1])[:k].mean()
    return float(ours / best) if best > 0 else 0.0


def cross_fitted_gain(
    x: np.ndarray, lr_right: np.ndarray, hr_right: np.ndarray, name: str, bins: int, seed: int = 0
) -> np.ndarray:
    """Each tile's predicted gain from bins of feature ``x`` fitted on the other half of the tiles
    (2 folds drawn with ``seed``), so no tile is scored by bins fitted on itself."""
    n = len(lr_right)
    fold = np.random.default_rng(seed).permutation(n) % 2 == 0
    pred = np.empty(n)
    for part in (fold, ~fold):
        m = fit_bins(x[~part], lr_right[~part], hr_right[~part], name, bins)
        p_lr, p_hr = m.predict({name: x[part]})
        pred[part] = p_hr - p_lr
    return pred


def fit_value_model(
    features: dict[str, np.ndarray],
    lr_right: np.ndarray,
    hr_right: np.ndarray,
    bins: int = 8,
    allowed: tuple[str, ...] = FEATURES,
    seed: int = 0,
) -> tuple[ValueModel, dict[str, float]]:
    """The best feature by 2-fold cross-fitted ranking score on these (validation) tiles, refitted on all.

    Returns the model and every candidate feature's score (``gain_curve_score``).
    """
    lr_right = np.asarray(lr_right, bool)
    hr_right = np.asarray(hr_right, bool)
    n = len(lr_right)
    if n < 2 * bins:
        raise ValueModelError(f"{n} tiles are too few to fit {bins} bins")
    scores: dict[str, float] = {}
    for name in allowed:
        if name not in features:
            continue
        pred = cross_fitted_gain(np.asarray(features[name], np.float64), lr_right, hr_right, name, bins, seed)
        scores[name] = round(gain_curve_score(pred, lr_right, hr_right), 4)
    if not scores:
        raise ValueModelError(f"none of the features {allowed} is available")
    best = max(scores, key=lambda k: (scores[k], -allowed.index(k)))
    model = fit_bins(np.asarray(features[best]), lr_right, hr_right, best, bins)
    info = {"tiles": n, "lr_accuracy": float(lr_right.mean()), "hr_accuracy": float(hr_right.mean()), "scores": scores}
    return ValueModel(model.feature, model.edges, model.p_lr, model.p_hr, model.counts, info), scores


# --- the planner ---------------------------------------------------------------------------------


def _shift(a: np.ndarray, dr: int, dc: int, fill: bool) -> np.ndarray:
    out = np.full_like(a, fill)
    h, w = a.shape
    if abs(dr) >= h or abs(dc) >= w:
        return out
    out[max(dr, 0) : h + min(dr, 0), max(dc, 0) : w + min(dc, 0)] = a[
        max(-dr, 0) : h + min(-dr, 0), max(-dc, 0) : w + min(-dc, 0)
    ]
    return out


def closing(mask: np.ndarray, r: int) -> np.ndarray:
    """Morphological closing with a (2r+1)² square: gaps up to 2r tiles between wanted tiles are filled."""
    if r <= 0:
        return mask.copy()
    offsets = [(dr, dc) for dr in range(-r, r + 1) for dc in range(-r, r + 1)]
    dil = np.zeros_like(mask)
    for dr, dc in offsets:
        dil |= _shift(mask, dr, dc, False)
    ero = np.ones_like(mask)
    for dr, dc in offsets:
        ero &= _shift(dil, dr, dc, True)
    return ero | mask


@dataclass(frozen=True)
class Candidate:
    mask: np.ndarray  # (R, C) bool: tiles to buy
    price: float  # exact, from the billing engine
    expected_accuracy: float


@dataclass(frozen=True)
class SpendPlan:
    mask: np.ndarray  # chosen tiles
    price: float
    expected_accuracy: float
    expected_accuracy_none: float
    expected_accuracy_full: float
    full_price: float
    reason: str
    curve: tuple[tuple[float, float], ...]  # (price, expected accuracy), the exact Pareto front

    def summary(self, currency: str) -> dict[str, Any]:
        return {
            "tiles_bought": int(self.mask.sum()),
            "price": round(self.price, 2),
            "currency": currency,
            "expected_accuracy": round(self.expected_accuracy, 4),
            "expected_accuracy_none": round(self.expected_accuracy_none, 4),
            "expected_accuracy_full_hr": round(self.expected_accuracy_full, 4),
            "full_hr_price": round(self.full_price, 2),
            "reason": self.reason,
            "curve": [{"price": round(p, 2), "expected_accuracy": round(a, 4)} for p, a in self.curve],
        }


def _estimate_prices(labels: np.ndarray, n: int, tile_m: tuple[float, float], profile: PricingProfile) -> np.ndarray:
    """Per component: price if ordered alone (bounding box grown to the minimum width when narrow)."""
    rows, cols = np.nonzero(labels)
    lab = labels[rows, cols] - 1
    rmin = np.full(n, np.iinfo(np.int64).max)
    rmax = np.full(n, -1)
    cmin, cmax = rmin.copy(), rmax.copy()
    np.minimum.at(rmin, lab, rows)
    np.maximum.at(rmax, lab, rows)
    np.minimum.at(cmin, lab, cols)
    np.maximum.at(cmax, lab, cols)
    count = np.bincount(lab, minlength=n)
    th, tw = tile_m
    h, w = (rmax - rmin + 1) * th, (cmax - cmin + 1) * tw
    narrow = np.minimum(h, w) < profile.min_width_m
    area = np.where(narrow, np.maximum(h, profile.min_width_m) * np.maximum(w, profile.min_width_m), count * th * tw)
    return np.maximum(area / 1e6, profile.min_area_km2) * profile.price_per_km2


def plan_spend(
    p_lr: np.ndarray,
    p_hr: np.ndarray,
    plannable: np.ndarray,
    price_mask: Callable[[np.ndarray], float],
    profile: PricingProfile,
    tile_m: tuple[float, float],
    *,
    max_price: float | None = None,
    target_accuracy: float | None = None,
) -> SpendPlan:
    """Which tiles of an (R, C) grid to buy: most expected accuracy within ``max_price``, or the least
    price reaching ``target_accuracy``; neither: the least price within 0.5 pt of full HR.

    ``p_lr`` / ``p_hr``: (R, C) P(right) without / with the tile's HR; ``plannable``: tiles that
    count and may be bought; ``price_mask``: the billing engine's exact price of buying a mask of
    tiles; ``tile_m``: a tile's (height, width) in metres, for the candidates' price estimates.
    """
    if max_price is not None and not (math.isfinite(max_price) and max_price >= 0):
        raise BudgetError(f"max_price must be a finite number >= 0, got {max_price}")
    if target_accuracy is not None and not (math.isfinite(target_accuracy) and 0 <= target_accuracy <= 1):
        raise BudgetError(f"target_accuracy must lie in 0..1, got {target_accuracy}")
    plannable = np.asarray(plannable, bool)
    n_tiles = int(plannable.sum())
    p_lr = np.where(plannable, p_lr, 0.0)
    gain = np.where(plannable, np.asarray(p_hr, np.float64) - p_lr, 0.0)
    base = float(p_lr.sum())

    def accuracy(mask: np.ndarray) -> float:
        return (base + float(gain[mask & plannable].sum())) / n_tiles if n_tiles else 0.0

    masks = _candidate_masks(gain, plannable, profile, tile_m)
    empty = np.zeros_like(plannable)
    cands = [Candidate(empty, 0.0, accuracy(empty))]
    for m in [plannable, *masks]:
        m = fill_polygon_holes(m) & plannable  # what the order's hole-free polygons deliver
        cands.append(Candidate(m, float(price_mask(m)), accuracy(m)))
    full = cands[1]
    # The exact Pareto front: no candidate on it is dearer and no more accurate than another.
    front: list[Candidate] = []
    for c in sorted(cands, key=lambda c: (c.price, -c.expected_accuracy)):
        if not front or c.expected_accuracy > front[-1].expected_accuracy + 1e-12:
            front.append(c)
    if max_price is not None:
        fits = [c for c in front if c.price <= max_price]
        chosen = fits[-1]
        reason = f"the most expected accuracy for at most {max_price:.2f} {profile.currency}"
        if target_accuracy is not None:
            reach = [c for c in fits if c.expected_accuracy >= target_accuracy]
            if reach:
                chosen, reason = reach[0], f"the least price reaching {target_accuracy:.2%} within the price cap"
    else:
        goal = target_accuracy if target_accuracy is not None else full.expected_accuracy - 0.005
        reach = [c for c in front if c.expected_accuracy >= goal - 1e-12]
        chosen = reach[0] if reach else front[-1]
        if target_accuracy is None:
            reason = "the least price within 0.5 pt of the expected accuracy with full HR"
        elif reach:
            reason = f"the least price reaching the target of {target_accuracy:.2%}"
        else:
            reason = f"the target of {target_accuracy:.2%} is out of reach; the most accurate order instead"
    return SpendPlan(
        mask=chosen.mask,
        price=chosen.price,
        expected_accuracy=chosen.expected_accuracy,
        expected_accuracy_none=cands[0].expected_accuracy,
        expected_accuracy_full=full.expected_accuracy,
        full_price=full.price,
        reason=reason,
        curve=tuple((c.price, c.expected_accuracy) for c in front),
    )


def _block_sizes(profile: PricingProfile, tile_m: tuple[float, float], shape: tuple[int, int]) -> list[int]:
    """Square block sides (tiles) that split a large group into orderable pieces: as wide as the minimum
    width, as large as the minimum area, and twice and four times that."""
    side = min(tile_m)
    by_width = max(1, math.ceil(profile.min_width_m / side))
    by_area = max(1, math.ceil(math.sqrt(profile.min_area_km2 * 1e6) / side))
    sizes = sorted({by_width, by_area, 2 * by_area, 4 * by_area})
    return [b for b in sizes if b < max(shape)]


def _split(labels: np.ndarray, block: int) -> tuple[np.ndarray, int]:
    """Groups cut along a grid of ``block``-tile squares: the parts of each group, one per square."""
    rows, cols = np.indices(labels.shape)
    nbc = -(-labels.shape[1] // block)
    key = (labels.astype(np.int64) * ((labels.shape[0] // block + 1) * nbc)) + (rows // block) * nbc + cols // block
    inside = labels > 0
    _, inv = np.unique(key[inside], return_inverse=True)
    out = np.zeros(labels.shape, np.int64)
    out[inside] = inv + 1
    return out, int(inv.max()) + 1 if inside.any() else 0


def _candidate_masks(
    gain: np.ndarray, plannable: np.ndarray, profile: PricingProfile, tile_m: tuple[float, float]
) -> list[np.ndarray]:
    """Tile masks worth pricing exactly: the estimated Pareto front over thresholds, closings, groups
    (connected, or cut into orderable squares) and prefixes of the groups ranked by gain per price."""
    positive = np.sort(gain[plannable & (gain > 0)])[::-1]
    if not len(positive):
        return []
    levels = np.unique(np.quantile(positive, np.linspace(0, 1, N_THRESHOLDS)))[::-1]
    blocks = [0, *_block_sizes(profile, tile_m, gain.shape)]
    costs, values, gids, ks = [], [], [], []  # per point: est price, est gain, grouping, prefix length
    groupings: list[tuple[np.ndarray, np.ndarray]] = []
    for t in levels:
        wanted = plannable & (gain >= t)
        for r in CLOSING_RADII:
            mask = closing(wanted, r) & plannable
            components, n_comp = label_components(mask)
            if n_comp == 0:
                continue
            for block in blocks:
                labels, n = (components, n_comp) if block == 0 else _split(components, block)
                value = np.bincount(labels[mask] - 1, gain[mask], minlength=n)
                price = _estimate_prices(labels, n, tile_m, profile)
                # a free group (a price list of 0 per km² and no minimums) comes first
                per_money = np.divide(value, price, out=np.full(n, np.inf), where=price > 0)
                order = np.argsort(-per_money, kind="stable")
                order = order[value[order] > 0]
                if not len(order):
                    continue
                groupings.append((labels, order))
                costs.append(np.maximum(np.cumsum(price[order]), profile.min_order_charge))
                values.append(np.cumsum(value[order]))
                gids.append(np.full(len(order), len(groupings) - 1))
                ks.append(np.arange(1, len(order) + 1))
    if not groupings:
        return []
    cost, value, gid, k = (np.concatenate(a) for a in (costs, values, gids, ks))
    by = np.lexsort((-value, cost))  # cheapest first, the most gain first among equals
    cost, value, gid, k = cost[by], value[by], gid[by], k[by]
    best_before = np.concatenate([[-np.inf], np.maximum.accumulate(value)[:-1]])
    on_front = value > best_before + 1e-12
    cost, value, gid, k = cost[on_front], value[on_front], gid[on_front], k[on_front]
    if len(value) > MAX_EXACT:
        # A third spread over the gain range, a third over the (log) price range, a third ever closer to
        # the most gain (where "within x pt of full HR" targets fall): the curve's shape everywhere.
        m = MAX_EXACT // 3
        by_gain = np.searchsorted(value, np.linspace(value[0], value[-1], m))
        by_cost = np.searchsorted(np.log1p(cost), np.linspace(np.log1p(cost[0]), np.log1p(cost[-1]), m))
        near_top = np.searchsorted(value, value[-1] - (value[-1] - value[0]) * 0.7 ** np.arange(1, m + 1))
        picks = np.unique(np.minimum(np.concatenate([by_gain, by_cost, near_top]), len(value) - 1))
        gid, k = gid[picks], k[picks]
    front = list(zip(gid.tolist(), k.tolist(), strict=True))
    out = []
    for g, n_groups in front:
        labels, order = groupings[g]
        out.append(np.isin(labels, order[:n_groups] + 1))
    return out
