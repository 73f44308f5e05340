"""The interactive data map: one self-contained HTML file (plotly.js embedded), usable at 550k points.

The page is the map, a linked virtualised table of the records (search, sort, filters, export)
and, with ``compare=``, the regions of several runs. Its code is the scripts of :data:`SCRIPTS`,
one file per part, found by name (``page.js`` state and records, ``plot.js`` the map,
``tooltip.js``, ``panel.js`` the side panel, ``explorer.js`` the table, ``sort.js``, ``filters.js``,
``details.js``, ``levels.js``, ``compare.js``, ``review.js``, ``serve.js`` (a page that
``datacarto serve`` gives asks it for its rows), ``main.js`` last, which starts it),
inlined in that order into the page's one app function, so the file stays one offline page.

Why it is built this way:

* No per-point hover strings in the plotly figure: the numbers travel as typed arrays and the
  record text as a word-coded stream, both gzip + base64 in ``<script type="text/plain">``
  blocks, expanded in a Web Worker with ``DecompressionStream('gzip')`` while the page parses
  plotly.js. The tooltip is our own div, filled on plotly's ``plotly_hover`` (traces have
  ``hoverinfo: "none"``) by looking the point up.
* Points are ``scattergl`` traces of one colour each, at most 90,000 points per trace: per-point
  colours, and plotly's spatial index above 100k points per trace, each cost seconds at 550k.
* Record text is only ever inserted with ``textContent``, and everything embedded is base64 or
  JSON with ``<``, ``>`` and ``&`` escaped, so a record holding ``</script>`` or an
  ``onerror=`` attribute shows as text and runs nothing.
* Text coding: every text value is split on single spaces; the distinct words form a vocabulary
  sorted by frequency and each value becomes word ids (LEB128 varints, first bytes and
  continuation bytes in two streams) ended by id 0 (id 1 = missing value). Frequent words take
  one byte, which lets gzip reach about half the size of gzipped JSON on SNLI-like text, and the
  page builds a value's string only when it shows it.
* Per-epoch p(gold) is stored rounded to 0.01 (uint8, 255 = NaN): what the tooltip shows.

Payload format (``meta.version`` 1): see :func:`decode_payload`, which the tests use to read a
written file back.
"""

from __future__ import annotations

import html
import json
import os
import re
import warnings
from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd

from .._io import write_text_atomic
from ..errors import DatacartoError
from ..metrics import labelled, map_scores, row_ids
from . import (
    REGION_COLORS,
    REGIONS,
    UNASSIGNED_COLOR,
    check_color_by,
    check_metrics,
    correctness_colors,
    correctness_levels,
    gold_labels,
    label_colors,
    region_codes,
    region_guides,
    subsample,
)
from .encoding import _b64_gzip, _numeric_blob, decode_payload, decode_text, encode_text
from .review import Review, review_arrays

FORMAT_VERSION = 1
TEMPLATE = "map_template.html"
#: the page's own code, inlined in this order into its app function (one scope; no data in them)
SCRIPTS = ("page.js", "plot.js", "tooltip.js", "panel.js", "explorer.js", "sort.js", "filters.js", "details.js",
           "levels.js", "compare.js", "review.js", "serve.js", "main.js")
DECODER = "decode.js"  # the payload decoder (a worker, or the page without one), its own script after the app
_PLACEHOLDER = re.compile(r"/\*@(PLOTLYJS|META|NUMERIC|TEXT|ALTMETA|ALTNUMERIC|ALTTEXT|TITLE|APPJS|DECODEJS)@\*/")
_SKIP_COLUMNS = {"row_id", "fingerprint"}
# The table shows besides confidence, variability and correctness the scores of SCORES declared with
# map=True (metrics.map_scores) that the metrics hold: each costs about 1.4 MB of HTML at 550k rows,
# stored to 1/65534 of its range.


def _holds_text(series: pd.Series) -> bool:
    values = series.dropna()
    return len(values) > 0 and isinstance(values.iloc[0], str)


def _text_columns(records: pd.DataFrame, ids: np.ndarray) -> dict[str, list]:
    """The text columns of ``records`` in the order of ``ids`` (a missing row gives None)."""
    if not isinstance(records, pd.DataFrame):
        raise DatacartoError(f"records must be a pandas DataFrame, got {type(records).__name__}")
    if "row_id" in records.columns:
        records = records.set_index("row_id")
    if records.index.has_duplicates:
        raise DatacartoError("records has duplicate row ids")
    if len(records) and not records.index.isin(ids).any():
        raise DatacartoError(
            f"records share no row id with the metrics table (records index e.g. {records.index[0]!r}, "
            f"metrics row ids e.g. {int(ids[0])}): index the records by row_id"
        )
    try:
        records = records.reindex(pd.Index(ids))
    except (TypeError, ValueError) as e:
        raise DatacartoError(f"records must be indexed by row id: {e}") from e
    out = {}
    for col in records.columns:
        series = records[col]
        if str(col) in _SKIP_COLUMNS or (str(col) == "label" and not _holds_text(series)):
            continue  # an example's label ids are not text; a unit record's label name is
        if not (pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)
                or isinstance(series.dtype, pd.CategoricalDtype)):
            continue
        vals = series.astype(object).tolist()
        out[str(col)] = [None if (v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA)
                         else (v if isinstance(v, str) else str(v)) for v in vals]
    return out


def _script_json(obj) -> str:
    """JSON safe inside a <script> element: no "<", ">" or "&" survive unescaped."""
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _gold_prob_codes(gold_probs, n_rows: int, positions: np.ndarray) -> tuple[np.ndarray, int]:
    probs = np.asarray(gold_probs, dtype=np.float64)
    if probs.ndim == 1:
        probs = probs[:, None]
    if probs.ndim != 2 or probs.shape[0] != n_rows:
        raise DatacartoError(
            f"gold_probs must have shape (N, E) with N = {n_rows} rows of the metrics table, got {probs.shape}"
        )
    probs = probs[positions]
    codes = np.full(probs.shape, 255, dtype=np.uint8)
    ok = np.isfinite(probs)
    codes[ok] = np.clip(np.round(probs[ok] * 100), 0, 100).astype(np.uint8)
    return codes, probs.shape[1]


# ----------------------------------------------------------------------------------------------
# the map


def _score_codes(values) -> tuple[np.ndarray, float, float]:
    """A score as uint16 codes (65535 = NaN) with value = lo + code x step: exact for small integers."""
    v = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64)
    ok = np.isfinite(v)
    lo, step = 0.0, 1.0
    if ok.any():
        vmin, vmax = float(v[ok].min()), float(v[ok].max())
        if not (vmin >= 0 and vmax < 65535 and np.all(v[ok] == np.round(v[ok]))):
            lo, step = vmin, (vmax - vmin) / 65534 or 1.0
    codes = np.full(v.shape, 65535, dtype=np.uint16)
    codes[ok] = np.clip(np.round((v[ok] - lo) / step), 0, 65534).astype(np.uint16)
    return codes, lo, step


def _table_scores(table: pd.DataFrame, scores) -> list[str]:
    if scores is None:
        return [c for c in map_scores() if c in table.columns]
    scores = [scores] if isinstance(scores, str) else list(scores)
    missing = [c for c in scores if c not in table.columns]
    if missing:
        raise DatacartoError(f"scores {missing} are not columns of the metrics table")
    return [c for c in scores if c not in ("confidence", "variability", "correctness")]


def _compare_codes(compare: pd.DataFrame, ids: np.ndarray) -> tuple[list[str], list[np.ndarray]]:
    """Region codes (0-2, 255 = none) of each run's column of a ``compare_runs`` table, in ``ids`` order."""
    if not isinstance(compare, pd.DataFrame):
        raise DatacartoError(f"compare must be a DataFrame (datacarto.compare_runs), got {type(compare).__name__}")
    runs = [str(c) for c in compare.columns if c not in ("majority", "stable")]
    if len(runs) < 2:
        raise DatacartoError("compare needs the regions of at least two runs")
    table = compare.reindex(pd.Index(ids))
    codes = []
    for col in [c for c in compare.columns if c not in ("majority", "stable")]:
        c = region_codes(table.rename(columns={col: "region"})[["region"]])
        codes.append(np.where(c < 0, 255, c).astype(np.uint8))
    return runs, codes


def _id_array(ids: np.ndarray) -> tuple[np.ndarray, bool]:
    """Integer ids as steps from the previous id (int32, True) where they fit, else as float64 (False)."""
    if ids.size and np.abs(ids).max() >= 2**53:
        raise DatacartoError("row ids must be below 2**53 for the interactive map")
    deltas = np.diff(ids, prepend=0)
    if deltas.size and deltas.min() >= -(2**31) and deltas.max() < 2**31:  # sorted ids: runs of small steps
        return deltas.astype(np.int32), True
    return ids.astype(np.float64), False  # exact below 2**53


def _unit_arrays(table: pd.DataFrame) -> tuple[dict, dict]:
    """A unit table's example row id (``unit_row``) and index in the example (``unit_sub``) per unit."""
    missing = [c for c in ("row_id", "sub_id") if c not in table.columns]
    if missing:
        raise DatacartoError(f"a unit-level map needs the columns {missing} (get_metrics(run, level='unit'))")
    rows = pd.to_numeric(table["row_id"]).to_numpy(dtype=np.int64)
    subs = pd.to_numeric(table["sub_id"]).to_numpy(dtype=np.int64)
    unit_row, delta = _id_array(rows)
    sub_dtype = np.uint16 if subs.size == 0 or subs.max() < 65536 else np.uint32
    return {"unit_row": unit_row, "unit_sub": subs.astype(sub_dtype)}, {"unit_row_delta": delta}


def _arrays(table: pd.DataFrame, ids: np.ndarray, gold: np.ndarray, n_labels: int) -> tuple[dict, dict]:
    """The numeric arrays every map carries, and what meta says about them."""
    label_dtype = np.uint8 if n_labels < 255 else np.uint16
    missing_label = np.iinfo(label_dtype).max
    levels, n_epochs = correctness_levels(table, None)
    arrays: dict[str, np.ndarray] = {}
    arrays["row_id"], row_id_delta = _id_array(ids)
    for col in ("variability", "confidence", "correctness"):
        arrays[col] = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=np.float32)
    # correctness is k/E for nearly every run: then the levels carry it (0.4 MB less at 550k)
    from_level = np.array_equal(np.where(levels < 0, np.nan, levels / max(n_epochs, 1)).astype(np.float32),
                                arrays["correctness"], equal_nan=True)
    if from_level:
        del arrays["correctness"]
    arrays["level"] = np.where(levels < 0, 255, levels).astype(np.uint8)
    arrays["gold"] = gold.astype(label_dtype)
    if "last_pred" in table.columns:
        pred = pd.to_numeric(table["last_pred"], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(pred) & (pred >= 0)
        arrays["last_pred"] = np.where(ok, np.nan_to_num(pred), missing_label).astype(label_dtype)
    if "region" in table.columns:
        codes = region_codes(table)
        arrays["region"] = np.where(codes < 0, 255, codes).astype(np.uint8)
    info = {"n_epochs": int(n_epochs), "missing_label": int(missing_label), "row_id_delta": row_id_delta,
            "correctness_from_level": bool(from_level), "has_region": "region" in table.columns,
            "has_labels": labelled(table), "has_pred": "last_pred" in table.columns and labelled(table)}
    return arrays, info


def build_payload(metrics: pd.DataFrame, records: pd.DataFrame | None = None, *, gold_probs=None,
                  label_names=None, color_by: str = "correctness", title: str | None = None,
                  max_points: int | None = None, seed: int = 0, scores=None,
                  compare: pd.DataFrame | None = None, unit_kind: str | None = None,
                  review: Review | None = None) -> tuple[dict, bytes, bytes | None]:
    """What the page embeds: (meta dict, numeric blob, text blob or None), before compression.

    ``unit_kind`` ("word", "label"): ``metrics`` is a unit table (``get_metrics(run, level="unit")``,
    with ``row_id`` and ``sub_id`` columns) and the payload is the unit level of a page. ``review``:
    the flagged rows of this level (the ``suspect`` and suggested-label columns).
    """
    check_color_by(color_by)
    check_metrics(metrics, ["confidence", "variability", "correctness", "gold"])
    if color_by == "region" and "region" not in metrics.columns:
        raise DatacartoError("color_by='region' needs a 'region' column in the metrics table "
                             "(datacarto.get_metrics or assign_regions adds it)")
    n_total = len(metrics)
    positions = subsample(n_total, max_points, seed)
    table = metrics.iloc[positions] if positions.size < n_total else metrics
    ids = row_ids(table)
    gold, names = gold_labels(table, label_names)
    if len(names) > 65535:
        raise DatacartoError(f"too many labels for the map: {len(names)}")
    arrays, info = _arrays(table, ids, gold, len(names))
    if unit_kind is not None:
        more, unit_info = _unit_arrays(table)
        arrays.update(more)
        info.update(unit_info)
    score_meta = []
    for name in _table_scores(table, scores):
        arrays[f"score:{name}"], lo, step = _score_codes(table[name])
        score_meta.append({"name": str(name), "lo": lo, "step": step})
    compare_meta = None
    if compare is not None:
        runs, codes = _compare_codes(compare, ids)
        for k, c in enumerate(codes):
            arrays[f"compare:{k}"] = c
        compare_meta = {"runs": runs}
    review_meta = None
    if review is not None:
        more, review_meta = review_arrays(review, table, ids, names, info["missing_label"])
        arrays.update(more)
    n_prob_epochs = 0
    if gold_probs is not None:
        arrays["gold_probs"], n_prob_epochs = _gold_prob_codes(gold_probs, n_total, positions)
    blob, layout = _numeric_blob(arrays)

    text_blob, text_columns = None, []
    if records is not None:
        cols = _text_columns(records, ids)
        if cols:
            text_blob, text_columns = encode_text(cols), list(cols)

    guides, guide_kind = region_guides(metrics)
    meta = {
        "version": FORMAT_VERSION, "n": int(ids.size), "n_total": int(n_total), **info,
        "level": "example" if unit_kind is None else "unit", "unit_kind": unit_kind,
        "id_name": "row_id" if unit_kind is None else "unit_id", "alt_level": None,
        "title": title or "Data map", "color_by": color_by,
        "label_names": names, "label_colors": label_colors(len(names)),
        "correctness_colors": correctness_colors(info["n_epochs"]),
        "regions": list(REGIONS), "region_colors": [REGION_COLORS[r] for r in REGIONS],
        "none_color": UNASSIGNED_COLOR, "prob_epochs": n_prob_epochs, "text_columns": text_columns,
        "scores": score_meta, "compare": compare_meta, "review": review_meta,
        "guides": [{"axis": g.axis, "value": g.value, "label": g.label, "start": g.start, "end": g.end}
                   for g in guides if np.isfinite(g.value)],
        "guide_kind": guide_kind, "arrays": layout,
    }
    return meta, blob, text_blob


@dataclass
class UnitLevel:
    """The unit level of a two-level page: one point per unit (label or word) of the mapped examples.

    ``metrics``: ``get_metrics(run, level="unit")`` (index ``unit_id``, columns ``row_id`` and
    ``sub_id`` naming each unit's example and place in it); ``records``: one record per unit by
    unit id (:func:`datacarto.units.unit_records`: the text with the unit marked); ``gold_probs``:
    (U, E) p(gold) per epoch in the order of ``metrics``; ``kind``: what a unit is ("word",
    "label"), as the switch and the tooltip name it.
    """

    metrics: pd.DataFrame
    records: pd.DataFrame | None = None
    gold_probs: np.ndarray | None = None
    label_names: list | None = None
    kind: str = "unit"


def interactive_map(metrics: pd.DataFrame, records: pd.DataFrame | None = None, *, gold_probs=None,
                    label_names=None, path: str | os.PathLike | None = None, color_by: str = "correctness",
                    title: str | None = None, max_points: int | None = None, seed: int = 0, scores=None,
                    compare: pd.DataFrame | None = None, units: UnitLevel | None = None,
                    open_level: str = "example", review: Review | None = None) -> str:
    """The interactive data map and its linked table as one self-contained HTML page.

    Parameters
    ----------
    metrics : DataFrame
        One row per example (``get_metrics``), indexed by row id.
    records : DataFrame, optional
        The examples by row id (e.g. ``load_examples(run)``); every text column shows in the
        tooltip, the table and exports. Without it the tooltip shows row ids and metrics.
    gold_probs : array of shape (N, E), optional
        p(gold) per epoch, rows in the order of ``metrics``, for the tooltip's trend.
    label_names, color_by, title
        Names of the label ids, the opening colouring, the page's title.
    max_points : int, optional
        Keep a seeded (``seed``) random subset of that many examples (and, with ``units``, their units).
    scores : list of str, optional
        Metric columns the table shows besides confidence, variability and correctness
        (default: the scores of :data:`datacarto.metrics.SCORES` declared with ``map=True``).
    compare : DataFrame, optional
        A :func:`datacarto.compare_runs` table (first run = the mapped one): the region transition
        matrix and the "transition" colouring (example level).
    units : UnitLevel, optional
        The same examples' units: the page holds both levels and a switch between them.
    open_level : {"example", "unit"}
        The level the page opens at (``"unit"`` needs ``units``).
    review : Review, optional
        Suspected label errors (:func:`datacarto.maps.review.run_review`): the ``suspect`` and
        suggested-label columns and the decisions' export, at the level ``review.level``.
    path : path, optional
        Also write the page there (atomically).

    Returns
    -------
    str
        The page.
    """
    if open_level not in ("example", "unit") or (open_level == "unit" and units is None):
        raise DatacartoError(f"open_level must be 'example' or, with units, 'unit'; got {open_level!r}")
    if review is not None and review.level == "unit" and units is None:
        raise DatacartoError("review.level is 'unit' but the page has no unit level (units=)")
    check_metrics(metrics, ["confidence", "variability", "correctness", "gold"])
    keep = subsample(len(metrics), max_points, seed)
    n_units = None if units is None else len(units.metrics)
    if units is not None and keep.size < len(metrics):
        units = _units_of(units, row_ids(metrics.iloc[keep]))
    at_units = review is not None and review.level == "unit"
    payloads = [build_payload(metrics, records, gold_probs=gold_probs, label_names=label_names, color_by=color_by,
                              title=title, max_points=max_points, seed=seed, scores=scores, compare=compare,
                              review=None if at_units else review)]
    if units is not None:
        payloads.append(build_payload(units.metrics, units.records, gold_probs=units.gold_probs,
                                      label_names=units.label_names, color_by=color_by, title=title, scores=scores,
                                      unit_kind=units.kind, review=review if at_units else None))
        payloads[1][0]["n_total"] = n_units
        if open_level == "unit":
            payloads.reverse()
        payloads[0][0]["alt_level"] = payloads[1][0]["level"]
    page = render_page(payloads)
    if path is not None:
        write_text_atomic(path, page)
    return page


def _units_of(units: UnitLevel, examples: np.ndarray) -> UnitLevel:
    """The units of ``examples`` only (a sampled map)."""
    mask = units.metrics["row_id"].isin(examples).to_numpy()
    table = units.metrics.loc[mask]
    records = None if units.records is None else units.records.loc[units.records.index.isin(table.index)]
    probs = None if units.gold_probs is None else np.asarray(units.gold_probs)[mask]
    return UnitLevel(table, records, probs, units.label_names, units.kind)


def render_page(payloads: list[tuple[dict, bytes, bytes | None]]) -> str:
    """The HTML page of one level's payload, or of two (the first opens; the second is the switch's)."""
    from plotly.offline import get_plotlyjs

    plotlyjs = get_plotlyjs()
    # plotly.js holds neither today; escaping keeps its <script> element intact if it ever does
    plotlyjs = re.sub(r"</(script)", r"<\\/\1", plotlyjs, flags=re.IGNORECASE).replace("<!--", "<\\!--")
    parts = {"PLOTLYJS": plotlyjs, "TITLE": html.escape(payloads[0][0]["title"]),
             "APPJS": "\n".join(_resource(name) for name in SCRIPTS), "DECODEJS": _resource(DECODER)}
    for prefix, payload in zip(("", "ALT"), payloads + [None]):
        meta, blob, text_blob = payload or ("", None, None)
        parts[prefix + "META"] = _script_json(meta) if meta else ""
        parts[prefix + "NUMERIC"] = _b64_gzip(blob) if blob is not None else ""
        parts[prefix + "TEXT"] = _b64_gzip(text_blob) if text_blob is not None else ""
    return _PLACEHOLDER.sub(lambda m: parts[m.group(1)], _resource(TEMPLATE))  # one pass: no rescanning


def _resource(name: str) -> str:
    return resources.files("datacarto.maps").joinpath(name).read_text(encoding="utf-8")


def gold_probabilities(logits: np.ndarray, gold: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """(N, E) softmax probability of the gold label per epoch, from (N, E, C) logits (float32)."""
    logits = np.asarray(logits)
    gold = np.asarray(gold, dtype=np.int64)
    out = np.empty(logits.shape[:2], dtype=np.float32)
    for s in range(0, logits.shape[0], chunk):
        z = logits[s:s + chunk].astype(np.float64)
        with warnings.catch_warnings():  # an all-NaN epoch (no logits) gives NaN, as it should
            warnings.simplefilter("ignore", RuntimeWarning)
            z = z - np.nanmax(z, axis=2, keepdims=True)
        ez = np.exp(z)
        g = gold[s:s + chunk]
        out[s:s + chunk] = ez[np.arange(g.size), :, g] / ez.sum(axis=2)
    return out


__all__ = ["interactive_map", "UnitLevel", "decode_payload", "encode_text", "decode_text", "gold_probabilities",
           "build_payload", "render_page"]
