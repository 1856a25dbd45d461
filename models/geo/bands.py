"""Which band of a raster is which: bands matched by meaning, not by position or exact label.

The model reads blue, green, red and near-infrared (Sentinel-2 B02, B03, B04,
B08). A raster may say what its bands are in several ways; the first that
applies wins:

1. the client says so: ``requested``, one entry per band of the file, each a STAC
   ``eo:common_name`` (``blue``, ``green``, ``red``, ``nir``) or a band label of a
   known sensor (``B8``, ``SR_B5``);
2. per-band metadata ``eo:common_name`` / ``common_name`` (GDAL band tags);
3. band descriptions: common names, or labels of one known sensor (Sentinel-2
   ``B02``-``B08``, Landsat 8/9 ``B2``-``B5``, Landsat 4/5/7 ``B1``-``B4``,
   with or without prefixes such as ``SR_`` or ``LC08_..._``);
4. no descriptions, or descriptions that say nothing (``Band 1``): file order.

Anything else that names bands but cannot be matched raises ``BandMismatchError``.
The match says which sensor the labels came from, so a plan can warn when that
is not the sensor the model was trained on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from models.errors import BandMismatchError, WrongBandCountError

SENTINEL2 = "Sentinel-2 MSI"
LANDSAT_OLI = "Landsat 8/9 OLI"
LANDSAT_TM = "Landsat 4/5 TM or Landsat 7 ETM+"

# Band number -> STAC eo:common_name, per sensor (the STAC EO extension's tables).
SENSORS: dict[str, dict[str, str]] = {
    SENTINEL2: {
        "B01": "coastal",
        "B02": "blue",
        "B03": "green",
        "B04": "red",
        "B05": "rededge",
        "B06": "rededge",
        "B07": "rededge",
        "B08": "nir",
        "B8A": "nir08",
        "B09": "nir09",
        "B10": "cirrus",
        "B11": "swir16",
        "B12": "swir22",
    },
    LANDSAT_OLI: {
        "B01": "coastal",
        "B02": "blue",
        "B03": "green",
        "B04": "red",
        "B05": "nir",
        "B06": "swir16",
        "B07": "swir22",
        "B08": "pan",
        "B09": "cirrus",
        "B10": "lwir11",
        "B11": "lwir12",
    },
    LANDSAT_TM: {"B01": "blue", "B02": "green", "B03": "red", "B04": "nir", "B05": "swir16", "B07": "swir22"},
}
COMMON_NAMES = frozenset(name for table in SENSORS.values() for name in table.values()) | {"nir08"}
_ALIASES = {"nir08": "nir"}  # Landsat's and Sentinel-2's narrow NIR stand in for the broad one

_LABEL = re.compile(r"(?:^|[_\s-])B0*(\d{1,2})(A?)$")  # "Band 1" is not a label: it says nothing
TAG_KEYS = ("eo:common_name", "common_name")


@dataclass(frozen=True)
class BandMatch:
    indexes: list[int]  # 1-based file bands, in the model's band order
    sensor: str | None  # the sensor whose labels named the bands, if labels did
    how: str  # "request", "common_name", "description" or "order"


def band_label(text: str) -> str | None:
    """``B02``-style label of a band description (``b2``, ``B02``, ``SR_B2``, ``LC08_..._B2``), or None."""
    m = _LABEL.search(text.strip().upper())
    return f"B{int(m.group(1)):02d}{m.group(2)}" if m else None


def _common(text: str) -> str | None:
    name = text.strip().lower()
    if name in COMMON_NAMES:
        return _ALIASES.get(name, name)
    return None


def sensor_of(bands: Sequence[str]) -> str | None:
    """The sensor whose labels these are, trying Sentinel-2 first (the labels of the bundles we train)."""
    labels = [band_label(b) for b in bands]
    for sensor, table in SENSORS.items():
        if all(label in table for label in labels):
            return sensor
    return None


def model_meanings(expected: Sequence[str]) -> list[str] | None:
    """The common names of the model's bands (Sentinel-2 labels or common names), or None if unknown."""
    names = [_common(e) for e in expected]
    if all(names):
        return names  # type: ignore[return-value]
    sensor = sensor_of(expected)
    if sensor is None:
        return None
    return [_ALIASES.get(n, n) for n in (SENSORS[sensor][band_label(e)] for e in expected)]  # type: ignore[index]


_PADDED = re.compile(r"(?:^|[_\s-])B0\d$")


def _by_sensor(
    labels: Sequence[str], need: Sequence[str], prefer: str | None, raw: Sequence[str] = ()
) -> tuple[list[str], str] | None:
    """Common names of ``labels`` under the first sensor (``prefer`` first) that yields exactly ``need``.

    Zero-padded labels (``B05``) are Sentinel-2's convention; Landsat writes ``B5``, so a padded
    label is read only as a Sentinel-2 band.
    """
    if any(_PADDED.search(r.strip().upper()) for r in raw):
        return _only(labels, need, SENTINEL2)
    order = ([prefer] if prefer else []) + [s for s in SENSORS if s != prefer]
    for sensor in order:
        found = _only(labels, need, sensor)
        if found is not None:
            return found
    return None


def _only(labels: Sequence[str], need: Sequence[str], sensor: str) -> tuple[list[str], str] | None:
    table = SENSORS[sensor]
    if all(label in table for label in labels):
        names = [_ALIASES.get(table[label], table[label]) for label in labels]
        if sorted(names) == sorted(need):
            return names, sensor
    return None


def _diff(labels: Sequence[str], raw: Sequence[str], expected: Sequence[str]) -> str:
    """``unexpected B05; missing B08`` against the model's own band labels."""
    want = [band_label(e) or e for e in expected]
    unexpected = [r for r, g in zip(raw, labels, strict=True) if g not in want]
    missing = [e for e, w in zip(expected, want, strict=True) if w not in labels]
    parts = []
    if unexpected:
        parts.append(f"unexpected {', '.join(unexpected)}")
    if missing:
        parts.append(f"missing {', '.join(missing)}")
    return "; ".join(parts) or "a band is repeated"


def _indexes(names: Sequence[str], need: Sequence[str]) -> list[int]:
    return [list(names).index(n) + 1 for n in need]


def _mismatch(name: str, shown: Sequence[str], expected: Sequence[str], why: str) -> BandMismatchError:
    return BandMismatchError(
        f"{name} holds bands {', '.join(shown)}; the model reads {', '.join(expected)} "
        f"(blue, green, red, nir): {why}. Name them with the 'bands' parameter, one per band of the file "
        f"in file order, e.g. bands=blue,green,red,nir"
    )


def match_by_meaning(
    descriptions: Sequence[str | None],
    expected: Sequence[str],
    *,
    tags: Sequence[Mapping[str, str]] | None = None,
    requested: Sequence[str] | None = None,
    name: str = "the raster",
) -> BandMatch:
    """Which file band feeds each of the model's ``expected`` bands (see the module docstring)."""
    count = len(descriptions)
    if count != len(expected):
        raise WrongBandCountError(
            f"{name} has {count} bands; the model expects {len(expected)} ({', '.join(expected)})"
        )
    need = model_meanings(expected)
    prefer = sensor_of(expected)
    if requested is not None:
        return _requested(requested, expected, need, prefer, name, count)
    if need is None:
        return _exact_labels(descriptions, expected, name)

    tagged = [_tag(t) for t in tags] if tags is not None else [None] * count
    if all(tagged):
        if sorted(tagged) != sorted(need):  # type: ignore[type-var]
            raise _mismatch(name, tagged, expected, "their eo:common_name tags do not name each of those once")  # type: ignore[arg-type]
        return BandMatch(_indexes(tagged, need), None, "common_name")  # type: ignore[arg-type]

    if not all(descriptions):
        return BandMatch(list(range(1, count + 1)), None, "order")
    texts: list[str] = list(descriptions)  # type: ignore[arg-type]
    commons = [_common(d) for d in texts]
    if all(commons):
        if sorted(commons) != sorted(need):  # type: ignore[type-var]
            raise _mismatch(name, texts, expected, "they do not name each of those once")
        return BandMatch(_indexes(commons, need), None, "common_name")  # type: ignore[arg-type]
    labels = [band_label(d) for d in texts]
    if not any(labels) and not any(commons):
        return BandMatch(list(range(1, count + 1)), None, "order")  # descriptions such as "Band 1" say nothing
    if all(labels):
        found = _by_sensor(labels, need, prefer, texts)  # type: ignore[arg-type]
        if found is not None:
            names, sensor = found
            return BandMatch(_indexes(names, need), sensor, "description")
        why = (
            f"{_diff(labels, texts, expected)}, and no known sensor ({'; '.join(SENSORS)}) "  # type: ignore[arg-type]
            "has those bands as blue, green, red and nir"
        )
    else:
        why = "not every band is named by a band label or a common name"
    raise _mismatch(name, texts, expected, why)


def _tag(tags: Mapping[str, str]) -> str | None:
    lowered = {k.lower(): v for k, v in tags.items()}
    for key in TAG_KEYS:
        if key in lowered:
            return _common(lowered[key]) or f"?{lowered[key]}"
    return None


def _requested(
    requested: Sequence[str],
    expected: Sequence[str],
    need: list[str] | None,
    prefer: str | None,
    name: str,
    count: int,
) -> BandMatch:
    given = [r.strip() for r in requested]
    if len(given) != count:
        raise BandMismatchError(
            f"bands names {len(given)} bands ({', '.join(given)}); {name} has {count}: name each, in file order"
        )
    if need is None:  # a model with unknown band meanings: the request uses its labels
        return _exact_labels(given, expected, name, how="request")
    commons = [_common(g) for g in given]
    if all(commons) and sorted(commons) == sorted(need):  # type: ignore[type-var]
        return BandMatch(_indexes(commons, need), None, "request")  # type: ignore[arg-type]
    labels = [band_label(g) for g in given]
    if all(labels):
        found = _by_sensor(labels, need, prefer, given)  # type: ignore[arg-type]
        if found is not None:
            names, sensor = found
            return BandMatch(_indexes(names, need), sensor, "request")
    raise BandMismatchError(
        f"bands={','.join(given)} does not name blue, green, red and nir once each "
        f"(use those common names, or the band labels of one sensor: {', '.join(SENSORS)})"
    )


def _exact_labels(
    descriptions: Sequence[str | None], expected: Sequence[str], name: str, how: str = "description"
) -> BandMatch:
    """Models whose bands have no known meaning: the file must use the model's own labels (any order)."""
    count = len(expected)
    if not all(descriptions):
        return BandMatch(list(range(1, count + 1)), None, "order")
    got = [band_label(d) or d.strip().upper() for d in descriptions]  # type: ignore[union-attr]
    want = [band_label(e) or e.strip().upper() for e in expected]
    if not any(g in want or band_label(g) for g in got):
        return BandMatch(list(range(1, count + 1)), None, "order")
    if sorted(got) != sorted(want):
        raise _mismatch(name, [str(d) for d in descriptions], expected, "they are not the model's bands")
    return BandMatch([got.index(w) + 1 for w in want], None, how)


def sensor_warning(match: BandMatch | None, expected: Sequence[str], trained_on: str | None = None) -> str | None:
    """A warning when the bands came from another sensor than the model's training data."""
    trained_on = trained_on or sensor_of(expected)
    if match is None or match.sensor is None or trained_on is None or match.sensor == trained_on:
        return None
    return (
        f"the raster's bands are {match.sensor} bands, read as blue, green, red and nir; the model was trained "
        f"on {trained_on}: its spectral response, resolution and radiometric scale differ, so decisions "
        "may be less reliable"
    )
