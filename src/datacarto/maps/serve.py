"""``datacarto serve RUN``: the explorer of a run too large for one file, from a small local server.

The server reads the run once as ``datacarto map`` does (:func:`datacarto.maps.run_maps.run_levels`)
and keeps it in memory: the metrics table, p(gold) per epoch, and the text columns as pyarrow
arrays, word-coded once (:class:`~datacarto.maps.textcodes.TextCodes`: an answer gathers its rows'
word ids instead of coding their text again). It gives the same page as ``datacarto map`` (same scripts, plotly.js inside, nothing from
the network) with ``meta.server`` set; the page then asks ``POST /api/rows`` for the rows of its
view (the plot's axis ranges) that pass its search and filters, and swaps them in as it swaps a
level (``serve.js``). Every answer is one payload of the page's format (:func:`build_payload`,
framed by :func:`datacarto.maps.encoding.frame_payload`) with, in ``meta.server``:

* ``matched``: rows passing the search and filters in the whole run; ``in_view``: those of them in
  the view, with the rows that have no point (a NaN coordinate: ``unplaced``), which every view
  holds as the written page's table lists them whatever the zoom; ``shown``: the rows sent, all of ``in_view`` when at most ``cap``, else the ``cap`` of
  them first in one seeded random order of the run (so zooming in keeps the points already shown);
* ``density``: the ``in_view`` rows binned over the view (``nx`` x ``ny`` counts), which the page
  draws as a grey layer under the points.

Search (case-insensitive substring over every text column: a one-word query over the vocabulary,
then the rows holding a matched word; several words over the values, pyarrow.compute) and filters
(regions, gold and predicted labels, score ranges, "show the suspects only") run here over all rows.
Only the example level is served. Where the run supports a label-error estimate, every answer carries
the review of ``datacarto map``'s page (the same flags: :func:`datacarto.maps.run_maps.page_review`,
coded per row by ``build_payload``); the page keeps its decisions by row (``review.js``), so they
outlive the view.
"""

from __future__ import annotations

import json
import math
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DatacartoError
from ..metrics import REGIONS, map_scores
from . import gold_labels, region_codes, region_guides
from .encoding import frame_payload
from .textcodes import TextCodes

#: rows the page holds at once: every row of a view up to this many, else a random sample of this many
VIEW_CAP = 100_000  # an answer of 100k SNLI-like rows: about 80 ms here (the page's redraw: about 300 ms)
DENSITY_BINS = 128
#: the largest query body the server reads (a page's query is well under a kilobyte)
MAX_QUERY_BYTES = 1 << 20


def _text_table(records: pd.DataFrame | None, index: pd.Index):
    """The page's text columns of ``records`` as a pyarrow table in the row order of ``index`` (or None)."""
    import pyarrow as pa

    from .interactive import _text_columns

    if records is None:
        return None
    columns = _text_columns(records, index.to_numpy())
    return pa.table({name: pa.array(values, type=pa.string()) for name, values in columns.items()}) if columns else None


class ServedRun:
    """One run's example level in memory, and the queries the page asks (see the module docstring)."""

    def __init__(self, run_dir: str | os.PathLike, split: str = "train", *, cap: int = VIEW_CAP, seed: int = 0):
        from .run_maps import page_review, run_levels, run_title

        if cap < 1:
            raise DatacartoError(f"cap must be at least 1, got {cap}")
        examples, _ = run_levels(run_dir, split)
        m = examples.metrics
        self.metrics, self.probs, self.cap, self.seed = m, np.asarray(examples.probs), int(cap), seed
        self.n = len(m)
        self.names = gold_labels(m, examples.label_names)[1]
        self.title = run_title(run_dir, split, None, examples, self.n, None)
        guides, self.guide_kind = region_guides(m)
        self.guides = [{"axis": g.axis, "value": g.value, "label": g.label, "start": g.start, "end": g.end}
                       for g in guides if np.isfinite(g.value)]
        self.text = _text_table(examples.records, m.index)
        self.codes = TextCodes(self.text) if self.text is not None else None
        self.x = pd.to_numeric(m["variability"], errors="coerce").to_numpy(dtype=np.float64)
        self.y = pd.to_numeric(m["confidence"], errors="coerce").to_numpy(dtype=np.float64)
        self.unplaced = ~(np.isfinite(self.x) & np.isfinite(self.y))  # no point on the map
        self.gold = gold_labels(m, self.names)[0]
        self.region = region_codes(m) if "region" in m.columns else None
        self.pred = (pd.to_numeric(m["last_pred"], errors="coerce").fillna(-1).to_numpy(dtype=np.int64)
                     if "last_pred" in m.columns else None)
        self.scores = [c for c in map_scores() if c in m.columns]
        self.rank = np.random.default_rng(seed).permutation(self.n).astype(np.int64)  # the order samples keep
        self.review, self.suspect = self._review(page_review(run_dir, split))
        self.extent = [float(np.nanmin(self.x)), float(np.nanmax(self.x)), float(np.nanmin(self.y)),
                       float(np.nanmax(self.y))]

    def _review(self, review):
        """The review the examples' page shows (None for flags of units: the written page's example
        level has none either), and each row's suspect rank over the whole run (0: not flagged)."""
        from ..metrics import row_ids
        from .review import review_arrays

        if review is None or review.level != "example":
            return None, None
        arrays, _ = review_arrays(review, self.metrics, row_ids(self.metrics), self.names, 65535)
        return review, arrays["suspect"]  # the ranks only: the answers code the rest per row

    # ------------------------------------------------------------------ queries

    def matching(self, spec: dict) -> np.ndarray:
        """Boolean mask of the rows passing ``spec``'s search and filters (the view's box aside)."""
        mask = np.ones(self.n, dtype=bool)
        for key, codes, names in (("region", self.region, list(REGIONS)), ("gold", self.gold, self.names),
                                  ("pred", self.pred, self.names)):
            if spec.get(key) is not None and codes is not None:
                mask &= np.isin(codes, _codes(spec[key], names, key))
        ranges = spec.get("ranges") or {}
        if not isinstance(ranges, dict) or not all(isinstance(r, (list, tuple)) and len(r) == 2
                                                   for r in ranges.values()):
            raise DatacartoError('ranges must map a score to [low, high] (null for no bound)')
        for name, (lo, hi) in ranges.items():
            values = self._score(name)
            if lo is not None:
                mask &= values >= float(lo)
            if hi is not None:
                mask &= values <= float(hi)
        if spec.get("suspects") and self.suspect is not None:  # "show the suspects only"
            mask &= self.suspect > 0
        found = self.search(str(spec.get("search") or "").strip())
        if found is not None:
            mask &= found
        return mask

    def _score(self, name: str) -> np.ndarray:
        if name not in ("confidence", "variability", "correctness", *self.scores):
            raise DatacartoError(f"no score {name!r}; scores: confidence, variability, correctness, "
                                 + ", ".join(self.scores))
        return pd.to_numeric(self.metrics[name], errors="coerce").to_numpy(dtype=np.float64)

    def search(self, query: str) -> np.ndarray | None:
        """Rows whose text (any column) holds ``query``, case-insensitive, as the page's ``searchRows``;
        None (the search is ignored, as there) for an empty query or a run without text columns."""
        if not query or self.codes is None:
            return None
        found = self.codes.search(query)  # by the vocabulary: faster
        return found if found is not None else self.search_values(query)

    def search_values(self, query: str) -> np.ndarray:
        """:meth:`search` over the values themselves (pyarrow.compute), for a query of several words."""
        import pyarrow.compute as pc

        found = np.zeros(self.n, dtype=bool)
        for column in self.text.columns:
            hit = pc.match_substring(column, query, ignore_case=True).fill_null(False)
            found |= hit.to_numpy(zero_copy_only=False)
        return found

    def in_box(self, box) -> np.ndarray:
        """Rows inside ``box`` = [x0, x1, y0, y1] (variability, confidence; ends included; None: all),
        and the rows without a point (a NaN coordinate): the written page's table lists them whatever
        the zoom, so every view holds them."""
        if box is None:
            return np.ones(self.n, dtype=bool)
        x0, x1, y0, y1 = _box(box)
        return (self.x >= x0) & (self.x <= x1) & (self.y >= y0) & (self.y <= y1) | self.unplaced

    def rows(self, spec: dict) -> tuple[np.ndarray, dict]:
        """Positions (ascending) of the rows the page gets for ``spec``, and what ``meta.server`` says."""
        passing = self.matching(spec)
        box = spec.get("box")
        inside = np.flatnonzero(passing & self.in_box(box))
        shown = inside
        if inside.size > self.cap:  # the cap rows first in the run's one random order
            keep = np.argpartition(self.rank[inside], self.cap - 1)[:self.cap]
            shown = np.sort(inside[keep])
        view = list(_box(box)) if box is not None else self._padded_extent()
        info = {"n_total": self.n, "matched": int(passing.sum()), "in_view": int(inside.size),
                "unplaced": int(self.unplaced[inside].sum()), "shown": int(shown.size), "cap": self.cap,
                "box": view, "density": self.density(inside, view)}
        return shown, info

    def _padded_extent(self) -> list[float]:
        x0, x1, y0, y1 = self.extent
        hi = x1 if x1 > 0 else 0.5
        return [min(x0, -0.02 * hi), 1.04 * hi, min(y0, -0.03), max(y1, 1.03)]

    def density(self, positions: np.ndarray, view, bins: int = DENSITY_BINS) -> dict:
        """Counts of ``positions`` in ``bins`` x ``bins`` cells over ``view`` (row-major by y, then x)."""
        x0, x1, y0, y1 = view
        positions = positions[~self.unplaced[positions]]  # the rows without a point are in no cell
        ix = np.floor((self.x[positions] - x0) / ((x1 - x0) or 1) * bins).astype(np.int64)
        iy = np.floor((self.y[positions] - y0) / ((y1 - y0) or 1) * bins).astype(np.int64)
        ix, iy = np.where(ix == bins, bins - 1, ix), np.where(iy == bins, bins - 1, iy)  # the box's far edges
        ok = (ix >= 0) & (ix < bins) & (iy >= 0) & (iy < bins)
        counts = np.bincount(iy[ok] * bins + ix[ok], minlength=bins * bins)
        return {"x0": x0, "x1": x1, "y0": y0, "y1": y1, "nx": bins, "ny": bins, "counts": counts.tolist()}

    # ------------------------------------------------------------------ payloads

    def payload(self, spec: dict) -> tuple[dict, bytes, bytes | None]:
        """The page's payload (meta, numeric blob, text blob) of the rows of ``spec``."""
        from .interactive import build_payload

        positions, info = self.rows(spec)
        empty = positions.size == 0
        take = positions if not empty else np.arange(min(1, self.n))  # a payload of one row, emptied below
        meta, blob, _ = build_payload(self.metrics.iloc[take], None, gold_probs=self.probs[take],
                                      label_names=self.names, title=self.title, review=self.review)
        text_blob = None
        if self.codes is not None:  # the text coded at start-up: gathered, not coded again
            text_blob, meta["text_columns"] = self.codes.encode(take), list(self.codes.columns)
        meta.update(guides=self.guides, guide_kind=self.guide_kind, n_total=self.n, server=info)
        if empty:
            meta, blob, text_blob = _emptied(meta, text_blob)
        return meta, blob, text_blob

    def answer(self, spec: dict) -> bytes:
        """``POST /api/rows``: the framed payload of ``spec``."""
        return frame_payload(*self.payload(spec))

    def page(self) -> str:
        """The explorer page, holding the whole run's first view (every row up to ``cap``, else a sample)."""
        from .interactive import render_page

        return render_page([self.payload({})])


def _emptied(meta: dict, text_blob: bytes | None) -> tuple[dict, bytes, bytes | None]:
    from .encoding import encode_text

    meta = {**meta, "n": 0, "arrays": [{**a, "offset": 0, "length": 0} for a in meta["arrays"]]}
    if meta.get("review"):  # the placeholder row is not held
        meta["review"] = {**meta["review"], "shown": 0}
    columns = meta.get("text_columns") or []
    return meta, b"", encode_text({c: [] for c in columns}) if text_blob is not None else None


def _codes(values, names: list, what: str) -> list[int]:
    """Names or codes of ``what`` (region, gold, pred) as codes; DatacartoError for an unknown one."""
    if not isinstance(values, (list, tuple)):
        raise DatacartoError(f"{what} must be a list of names or codes, got {values!r}")
    out = []
    for v in values:
        k = v if isinstance(v, int) and not isinstance(v, bool) else (names.index(v) if v in names else -1)
        if not 0 <= k < len(names):
            raise DatacartoError(f"unknown {what} {v!r}; one of {', '.join(map(str, names))}")
        out.append(k)
    return out


def _box(box) -> tuple[float, float, float, float]:
    try:
        x0, x1, y0, y1 = (float(v) for v in box)
    except (TypeError, ValueError) as e:
        raise DatacartoError(f"box must be [x0, x1, y0, y1], got {box!r}") from e
    if not all(math.isfinite(v) for v in (x0, x1, y0, y1)):
        raise DatacartoError(f"box must be finite, got {box!r}")
    return min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)


# ----------------------------------------------------------------------------------------------
# the server


class _Handler(BaseHTTPRequestHandler):
    """``GET /`` the page; ``POST /api/rows`` (JSON query) a framed payload; ``GET /api/info`` JSON."""

    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server's name)
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(200, self.server.app.page_bytes(), "text/html; charset=utf-8")
        elif path == "/api/info":
            run = self.server.app.run
            info = {"n_total": run.n, "cap": run.cap, "title": run.title, "label_names": run.names,
                    "text_columns": [] if run.text is None else run.text.column_names}
            self._send(200, json.dumps(info).encode("utf-8"), "application/json")
        else:
            self._send(404, b'{"error": "not found"}', "application/json")

    def do_POST(self):  # noqa: N802
        if self.path.split("?", 1)[0] != "/api/rows":
            self._send(404, b'{"error": "not found"}', "application/json")
            return
        try:
            size = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            size = -1
        if not 0 <= size <= MAX_QUERY_BYTES:  # unread: the connection is closed after the answer
            self.close_connection = True
            self._send(400, json.dumps({"error": f"a query is 0 to {MAX_QUERY_BYTES} bytes"}).encode("utf-8"),
                       "application/json")
            return
        try:
            spec = json.loads(self.rfile.read(size).decode("utf-8") or "{}")
            if not isinstance(spec, dict):
                raise DatacartoError("the query must be a JSON object")
            body = self.server.app.run.answer(spec)
        except Exception as e:  # noqa: BLE001 (any bad query, however malformed: say why, keep serving)
            self._send(400, json.dumps({"error": f"{type(e).__name__}: {e}"}).encode("utf-8"), "application/json")
            return
        self._send(200, body, "application/octet-stream")

    def _send(self, code: int, body: bytes, kind: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 (http.server's name): quiet
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    app: MapServer


class MapServer:
    """A run's explorer on ``http://host:port/``: :meth:`start` (a thread) or :meth:`serve_forever`, then
    :meth:`stop`; also a context manager. ``run`` is the :class:`ServedRun`, ``url`` the page's address."""

    def __init__(self, run: ServedRun, httpd: _Server):
        self.run, self.httpd = run, httpd
        httpd.app = self
        self._page: bytes | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"

    def page_bytes(self) -> bytes:
        with self._lock:  # built once, on the first request
            if self._page is None:
                self._page = self.run.page().encode("utf-8")
            return self._page

    def start(self) -> MapServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="datacarto-serve", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
            self._thread = None
        self.httpd.server_close()

    def __enter__(self) -> MapServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def listen(host: str = "127.0.0.1", port: int = 0) -> _Server:
    """A bound (not yet serving) HTTP server; DatacartoError when the address cannot be had."""
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise DatacartoError(f"port must be between 0 and 65535 (0: any free port), got {port}")
    try:
        return _Server((host, port), _Handler)
    except socket.gaierror as e:
        raise DatacartoError(f"cannot listen on {host}:{port}: unknown host ({e.strerror})") from e
    except OSError as e:
        raise DatacartoError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e


def serve(run_dir: str | os.PathLike, *, split: str = "train", host: str = "127.0.0.1", port: int = 0,
          cap: int = VIEW_CAP, seed: int = 0) -> MapServer:
    """The explorer of ``run_dir`` served on ``host:port`` (0: any free port), not yet started.

    The address is taken first (a port in use fails at once), then the run is read into memory.
    """
    if not Path(run_dir).is_dir():
        raise DatacartoError(f"run directory {run_dir} not found")
    httpd = listen(host, port)
    try:
        run = ServedRun(run_dir, split, cap=cap, seed=seed)
    except BaseException:
        httpd.server_close()
        raise
    return MapServer(run, httpd)


__all__ = ["serve", "MapServer", "ServedRun", "listen", "VIEW_CAP"]
