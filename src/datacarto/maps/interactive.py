"""The interactive data map: one self-contained HTML file (plotly.js embedded), usable at 550k points.

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

import base64
import gzip
import html
import json
import os
import re
import warnings
from importlib import resources

import numpy as np
import pandas as pd

from .._io import write_text_atomic
from ..errors import DatacartoError
from ..metrics import row_ids
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

FORMAT_VERSION = 1
TEMPLATE = "map_template.html"
_END, _NULL = 0, 1  # reserved word ids: end of a value, missing value
_PLACEHOLDER = re.compile(r"/\*@(PLOTLYJS|META|NUMERIC|TEXT|TITLE)@\*/")
_SKIP_COLUMNS = {"row_id", "fingerprint", "label"}


# ----------------------------------------------------------------------------------------------
# encoding


def _b64_gzip(data: bytes) -> str:
    return base64.b64encode(gzip.compress(data, compresslevel=6, mtime=0)).decode("ascii")


def _numeric_blob(arrays: dict[str, np.ndarray]) -> tuple[bytes, list[dict]]:
    """Concatenate little-endian arrays, each 8-byte aligned so the page can view it as a typed array."""
    parts, layout, offset = [], [], 0
    for name, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        dtype = arr.dtype.newbyteorder("<")
        raw = arr.astype(dtype, copy=False).tobytes()
        layout.append({"name": name, "dtype": dtype.str[1:], "offset": offset, "length": int(arr.size)})
        pad = (-len(raw)) % 8
        parts += [raw, b"\0" * pad]
        offset += len(raw) + pad
    return b"".join(parts), layout


def _varint_streams(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """LEB128 varints of ``ids`` (< 2**32), split into first bytes and continuation bytes (vectorized)."""
    ids = np.asarray(ids, dtype=np.uint32)
    first = (ids & 0x7F).astype(np.uint8)
    multi = ids >= 0x80
    first[multi] |= 0x80
    high = ids[multi] >> 7  # what the continuation bytes carry, 7 bits each
    nbytes = np.ones(high.shape, dtype=np.int64)
    for k in range(1, 4):
        nbytes += high >= (1 << (7 * k))
    offsets = np.cumsum(nbytes) - nbytes
    rest = np.empty(int(nbytes.sum()), dtype=np.uint8)
    for k in range(4):
        has = nbytes > k
        byte = ((high[has] >> (7 * k)) & 0x7F).astype(np.uint8)
        byte[nbytes[has] > k + 1] |= 0x80
        rest[offsets[has] + k] = byte
    return first, rest


_SEP = "\x1e"  # joins values on the fast path; a value holding it takes the slow path


def _factorized_tokens(values: list) -> tuple[np.ndarray, np.ndarray, int]:
    """Words of every value (split on single spaces), each value followed by an end marker.

    Returns (codes per token, distinct tokens, code of the end marker). The fast path joins all
    values and lets C code split and hash them; pandas hashes strings as C strings, so values
    holding NUL (or the separator) go through a Python dict instead.
    """
    texts = ["" if v is None else v for v in values]
    joined = _SEP.join(texts)
    if "\0" not in joined and joined.count(_SEP) == len(texts) - 1:
        tokens = (joined.replace(_SEP, f" {_SEP} ") + f" {_SEP}").split(" ")
        del joined
        codes, uniques = pd.factorize(np.asarray(tokens, dtype=object))
        end = np.flatnonzero(uniques == _SEP)
        return codes, uniques, int(end[0]) if end.size else -1
    del joined
    index: dict = {None: 0}  # None: the end marker
    codes = []
    for t in texts:
        codes += [index.setdefault(w, len(index)) for w in t.split(" ")]
        codes.append(0)
    uniques = np.empty(len(index), dtype=object)
    uniques[:] = list(index)
    return np.asarray(codes, dtype=np.int64), uniques, 0


def encode_text(columns: dict[str, list]) -> bytes:
    """Word-code text columns (equal length lists of str or None); see the module docstring."""
    names = list(columns)
    values = [v for name in names for v in columns[name]]
    n_values = len(values)
    codes, uniques, end_code = _factorized_tokens(values)
    counts = np.bincount(codes, minlength=len(uniques))
    if end_code >= 0:
        counts[end_code] = -1  # sorts last: kept out of the vocabulary
    order = np.argsort(-counts, kind="stable")
    if end_code >= 0:
        order = order[:-1]
    ids_of_code = np.empty(len(uniques), dtype=np.int64)
    ids_of_code[order] = np.arange(len(order)) + 2
    if end_code >= 0:
        ids_of_code[end_code] = _END
    ids = ids_of_code[codes]
    del codes
    null = np.array([v is None for v in values], dtype=bool)
    if null.any():  # a missing value is coded as its one (empty) word -> id 1
        ends = np.flatnonzero(ids == _END)
        starts = np.concatenate([[0], ends[:-1] + 1])
        ids[starts[null]] = _NULL
    vocab = [str(uniques[c]) for c in order]
    first, rest = _varint_streams(ids)
    header = json.dumps({"columns": names, "n_values": n_values, "n_tokens": int(ids.size),
                         "n_first": int(first.size), "n_rest": int(rest.size), "vocab": vocab},
                        ensure_ascii=False).encode("utf-8")
    return len(header).to_bytes(4, "little") + header + first.tobytes() + rest.tobytes()


def decode_text(data: bytes) -> dict[str, list]:
    """Inverse of :func:`encode_text` (the page does the same in JavaScript)."""
    size = int.from_bytes(data[:4], "little")
    header = json.loads(data[4:4 + size].decode("utf-8"))
    pos = 4 + size
    first = np.frombuffer(data, dtype=np.uint8, count=header["n_first"], offset=pos)
    rest = np.frombuffer(data, dtype=np.uint8, count=header["n_rest"], offset=pos + header["n_first"])
    ids, r = [], 0
    for b in first.tolist():
        value, shift = b & 0x7F, 7
        cont = b & 0x80
        while cont:
            c = int(rest[r])
            r += 1
            value |= (c & 0x7F) << shift
            shift += 7
            cont = c & 0x80
        ids.append(value)
    vocab = header["vocab"]
    values, words = [], []
    for i in ids:
        if i == _END:
            values.append(None if words == [None] else " ".join(words))
            words = []
        else:
            words.append(None if i == _NULL else vocab[i - 2])
    names = header["columns"]
    n = header["n_values"] // max(len(names), 1)
    return {name: values[k * n:(k + 1) * n] for k, name in enumerate(names)}


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
        if str(col) in _SKIP_COLUMNS:
            continue
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


def build_payload(metrics: pd.DataFrame, records: pd.DataFrame | None = None, *, gold_probs=None,
                  label_names=None, color_by: str = "correctness", title: str | None = None,
                  max_points: int | None = None, seed: int = 0) -> tuple[dict, bytes, bytes | None]:
    """What the page embeds: (meta dict, numeric blob, text blob or None), before compression."""
    check_color_by(color_by)
    check_metrics(metrics, ["confidence", "variability", "correctness", "gold"])
    if color_by == "region" and "region" not in metrics.columns:
        raise DatacartoError("color_by='region' needs a 'region' column in the metrics table "
                             "(datacarto.metrics.get_metrics or assign_regions adds it)")
    n_total = len(metrics)
    positions = subsample(n_total, max_points, seed)
    table = metrics.iloc[positions] if positions.size < n_total else metrics
    ids = row_ids(table)
    gold, names = gold_labels(table, label_names)
    if len(names) > 65535:
        raise DatacartoError(f"too many labels for the map: {len(names)}")
    label_dtype = np.uint8 if len(names) < 255 else np.uint16
    missing_label = np.iinfo(label_dtype).max
    levels, n_epochs = correctness_levels(table, None)

    arrays: dict[str, np.ndarray] = {}
    if np.abs(ids).max() >= 2**53:
        raise DatacartoError("row ids must be below 2**53 for the interactive map")
    deltas = np.diff(ids, prepend=0)
    row_id_delta = bool(deltas.size and deltas.min() >= -(2**31) and deltas.max() < 2**31)
    if row_id_delta:  # sorted ids (the usual case) become runs of small steps: gzip makes them tiny
        arrays["row_id"] = deltas.astype(np.int32)
    else:
        arrays["row_id"] = ids.astype(np.float64)  # exact below 2**53
    for col in ("variability", "confidence", "correctness"):
        arrays[col] = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=np.float32)
    arrays["level"] = np.where(levels < 0, 255, levels).astype(np.uint8)
    arrays["gold"] = gold.astype(label_dtype)
    has_pred = "last_pred" in table.columns
    if has_pred:
        pred = pd.to_numeric(table["last_pred"], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(pred) & (pred >= 0)
        arrays["last_pred"] = np.where(ok, np.nan_to_num(pred), missing_label).astype(label_dtype)
    has_region = "region" in table.columns
    if has_region:
        codes = region_codes(table)
        arrays["region"] = np.where(codes < 0, 255, codes).astype(np.uint8)
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
        "version": FORMAT_VERSION,
        "n": int(ids.size),
        "n_total": int(n_total),
        "n_epochs": int(n_epochs),
        "title": title or "Data map",
        "color_by": color_by,
        "label_names": names,
        "label_colors": label_colors(len(names)),
        "missing_label": int(missing_label),
        "correctness_colors": correctness_colors(n_epochs),
        "regions": list(REGIONS),
        "region_colors": [REGION_COLORS[r] for r in REGIONS],
        "none_color": UNASSIGNED_COLOR,
        "has_region": has_region,
        "has_pred": has_pred,
        "prob_epochs": n_prob_epochs,
        "text_columns": text_columns,
        "guides": [{"axis": g.axis, "value": g.value, "label": g.label, "start": g.start, "end": g.end}
                   for g in guides if np.isfinite(g.value)],
        "guide_kind": guide_kind,
        "arrays": layout,
        "row_id_delta": row_id_delta,
    }
    return meta, blob, text_blob


def interactive_map(metrics: pd.DataFrame, records: pd.DataFrame | None = None, *, gold_probs=None,
                    label_names=None, path: str | os.PathLike | None = None, color_by: str = "correctness",
                    title: str | None = None, max_points: int | None = None, seed: int = 0) -> str:
    """The interactive data map as one self-contained HTML page; also written to ``path`` if given.

    ``records``: the examples by row id (e.g. ``load_examples(run)``); every text column shows in
    the tooltip and in exported selections. Without it the tooltip shows row ids and metrics.
    ``gold_probs``: (N, E) p(gold) per epoch, rows in the order of ``metrics``, for the trend.
    ``max_points`` keeps a seeded random subset of that many rows.
    """
    meta, blob, text_blob = build_payload(metrics, records, gold_probs=gold_probs, label_names=label_names,
                                          color_by=color_by, title=title, max_points=max_points, seed=seed)
    from plotly.offline import get_plotlyjs

    plotlyjs = get_plotlyjs()
    # plotly.js holds neither today; escaping keeps its <script> element intact if it ever does
    plotlyjs = re.sub(r"</(script)", r"<\\/\1", plotlyjs, flags=re.IGNORECASE).replace("<!--", "<\\!--")
    parts = {
        "PLOTLYJS": plotlyjs,
        "META": _script_json(meta),
        "NUMERIC": _b64_gzip(blob),
        "TEXT": _b64_gzip(text_blob) if text_blob is not None else "",
        "TITLE": html.escape(meta["title"]),
    }
    page = _PLACEHOLDER.sub(lambda m: parts[m.group(1)], _template())  # one pass: inserted text is not rescanned
    if path is not None:
        write_text_atomic(path, page)
    return page


def _template() -> str:
    return resources.files("datacarto.maps").joinpath(TEMPLATE).read_text(encoding="utf-8")


# ----------------------------------------------------------------------------------------------
# reading a page back (tests, debugging)


def decode_payload(page: str) -> tuple[dict, dict[str, np.ndarray], dict[str, list] | None]:
    """Read a written map back: (meta, numeric arrays by name, text columns or None)."""

    def block(name: str) -> str:
        m = re.search(rf'<script type="[^"]+" id="{name}">(.*?)</script>', page, flags=re.S)
        if m is None:
            raise DatacartoError(f"not a datacarto map: no {name} block")
        return m.group(1).strip()

    meta = json.loads(block("dc-meta"))
    raw = gzip.decompress(base64.b64decode(block("dc-numeric")))
    arrays = {}
    for spec in meta["arrays"]:
        dtype = np.dtype("<" + spec["dtype"])
        arrays[spec["name"]] = np.frombuffer(raw, dtype=dtype, count=spec["length"], offset=spec["offset"])
    if meta.get("row_id_delta"):
        arrays["row_id"] = np.cumsum(arrays["row_id"], dtype=np.int64)
    if "gold_probs" in arrays:
        arrays["gold_probs"] = arrays["gold_probs"].reshape(meta["n"], meta["prob_epochs"])
    text = block("dc-text")
    columns = decode_text(gzip.decompress(base64.b64decode(text))) if text else None
    return meta, arrays, columns


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


__all__ = ["interactive_map", "decode_payload", "encode_text", "decode_text", "gold_probabilities",
           "build_payload"]
