"""Encoding of the interactive map's payload: typed-array blobs and word-coded text.

See :mod:`datacarto.maps.interactive` for why the page carries its data this way.
"""

from __future__ import annotations

import base64
import gzip
import json

import numpy as np
import pandas as pd

_END, _NULL = 0, 1  # reserved word ids: end of a value, missing value

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
    ids = np.asarray(ids)
    if ids.dtype not in (np.uint8, np.uint16, np.uint32):
        ids = ids.astype(np.uint32)
    multi = ids >= 0x80
    first = (ids & 0x7F).astype(np.uint8) | (multi.view(np.uint8) << 7)
    high = ids[multi] >> 7  # what the continuation bytes carry, 7 bits each
    if not high.size or high.max() < 0x80:  # every id below 2**14: one continuation byte at most
        return first, high.astype(np.uint8)
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
    return text_stream(names, n_values, ids, [str(uniques[c]) for c in order])


def text_stream(names: list[str], n_values: int, ids: np.ndarray, vocab: list[str]) -> bytes:
    """The coded text of ``n_values`` values (column after column): word ids (0 ends a value, 1 is a missing
    value, k >= 2 is ``vocab[k - 2]``) as two varint streams after a JSON header (what the page reads)."""
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


# ----------------------------------------------------------------------------------------------
# reading a page back (tests, debugging)


def decode_payload(page: str, level: str | None = None) -> tuple[dict, dict[str, np.ndarray], dict[str, list] | None]:
    """Read a written map back: (meta, numeric arrays by name, text columns or None).

    Parameters
    ----------
    page : str
        The HTML of a map written by :func:`datacarto.maps.interactive.interactive_map`.
    level : {"example", "unit"}, optional
        Which level of a two-level page (default: the one it opens at).

    Returns
    -------
    tuple
        Table scores come back under their own names; a compared run's region codes as
        ``compare:<k>``; at the unit level ``unit_row`` (the example's row id) and ``unit_sub``.
    """
    import re

    from ..errors import DatacartoError

    def block(name: str) -> str:
        m = re.search(rf'<script type="[^"]+" id="{name}">(.*?)</script>', page, flags=re.S)
        if m is None:
            raise DatacartoError(f"not a datacarto map: no {name} block")
        return m.group(1).strip()

    prefix = "dc-"
    if level is not None and json.loads(block("dc-meta")).get("level", "example") != level:
        if not block("dc-alt-meta"):
            raise DatacartoError(f"the page has no {level} level")
        prefix = "dc-alt-"
    meta = json.loads(block(prefix + "meta"))
    text = block(prefix + "text")
    return decode_parts(meta, gzip.decompress(base64.b64decode(block(prefix + "numeric"))),
                        gzip.decompress(base64.b64decode(text)) if text else None)


def decode_parts(meta: dict, raw: bytes, text: bytes | None) -> tuple[dict, dict[str, np.ndarray], dict | None]:
    """One payload's (meta, numeric arrays by name, text columns or None) from its raw blobs."""
    arrays = {}
    for spec in meta["arrays"]:
        dtype = np.dtype("<" + spec["dtype"])
        arrays[spec["name"]] = np.frombuffer(raw, dtype=dtype, count=spec["length"], offset=spec["offset"])
    for name, flag in (("row_id", "row_id_delta"), ("unit_row", "unit_row_delta")):
        if meta.get(flag):
            arrays[name] = np.cumsum(arrays[name], dtype=np.int64)
    if "gold_probs" in arrays:
        arrays["gold_probs"] = arrays["gold_probs"].reshape(meta["n"], meta["prob_epochs"])
    if meta.get("correctness_from_level"):
        level_codes = arrays["level"]
        arrays["correctness"] = np.where(level_codes == 255, np.nan,
                                         level_codes / max(meta["n_epochs"], 1)).astype(np.float32)
    for spec in meta.get("scores", []):  # scores come back as values (to 1/65534 of their range)
        codes = arrays.pop(f"score:{spec['name']}")
        arrays[spec["name"]] = np.where(codes == 65535, np.nan, spec["lo"] + codes * spec["step"])
    return meta, arrays, decode_text(text) if text else None


# ----------------------------------------------------------------------------------------------
# one payload as one binary message (``datacarto serve``'s answers; decode.js ``unpack`` reads it)


def frame_payload(meta: dict, blob: bytes, text_blob: bytes | None) -> bytes:
    """``uint32 n`` + ``n`` bytes of JSON ``{meta, numeric, text}`` (padded so the numbers start 8-byte
    aligned) + the numeric blob + the text blob: what the page views as typed arrays without a copy."""
    text_blob = text_blob or b""
    head = json.dumps({"meta": meta, "numeric": len(blob), "text": len(text_blob)},
                      ensure_ascii=False, allow_nan=False).encode("utf-8")
    head += b" " * ((-(4 + len(head))) % 8)
    return len(head).to_bytes(4, "little") + head + blob + text_blob


def decode_response(data: bytes) -> tuple[dict, dict[str, np.ndarray], dict[str, list] | None]:
    """Inverse of :func:`frame_payload`: (meta, numeric arrays by name, text columns or None)."""
    size = int.from_bytes(data[:4], "little")
    head = json.loads(data[4:4 + size].decode("utf-8"))
    start = 4 + size
    raw = data[start:start + head["numeric"]]
    text = data[start + head["numeric"]:start + head["numeric"] + head["text"]]
    return decode_parts(head["meta"], raw, text or None)
