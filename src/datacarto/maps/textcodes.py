"""The text of a served run word-coded once, so that each answer only gathers its rows' word ids.

:func:`datacarto.maps.encoding.encode_text` codes one payload's text from its strings: it splits
every value into words, counts them and sorts the vocabulary, most of the time of a
``datacarto serve`` answer when it ran per answer (1.7 s of 2.0 s for 100k SNLI-like rows).
:class:`TextCodes` splits and counts once, for all rows, at start-up (pyarrow: no Python string per
word) and keeps per text column one flat array of word ids (the run's vocabulary ranked by frequency;
0 ends a value, 1 is a missing value) and where each value starts. An answer gathers its rows' ids by
index arithmetic, keeps the words it uses (in the run's frequency order, so frequent words still take
one byte) and writes the stream of :func:`~datacarto.maps.encoding.text_stream`: the page decodes the
same strings as from ``encode_text``.
"""

from __future__ import annotations

import numpy as np

from .encoding import _NULL, text_stream

_CHUNK = 1 << 20  # values placed at a time (bounds the index arrays at start-up)


def _gather(ids: np.ndarray, starts: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The ids of the values at ``positions``, one after the other (value k spans starts[k]:starts[k+1])."""
    begin = starts[positions]
    lengths = starts[positions + 1] - begin
    ends = np.cumsum(lengths)
    if not ends.size:
        return ids[:0]
    return ids[np.repeat(begin - (ends - lengths), lengths) + np.arange(ends[-1])]


class TextCodes:
    """The word ids of every value of a pyarrow table's string columns (see the module docstring)."""

    def __init__(self, table):
        import pyarrow as pa
        import pyarrow.compute as pc

        self.columns = list(table.column_names)
        lengths, nulls, flats = [], [], []
        for column in table.columns:  # words as str.split(" "); a missing value is one empty word, as in encode_text
            words = pc.split_pattern(pc.fill_null(column, ""), " ")
            lengths.append(pc.list_value_length(words).to_numpy().astype(np.int64))
            nulls.append(column.is_null().to_numpy())
            flats += pc.list_flatten(words).chunks
        coded = pa.table({"w": pa.chunked_array(flats, type=pa.string()).dictionary_encode()}).unify_dictionaries()
        chunks = coded.column("w").chunks
        words = (chunks[0].dictionary if chunks else pa.array([], pa.string())).to_numpy(zero_copy_only=False)
        codes = np.concatenate([c.indices.to_numpy() for c in chunks]) if chunks else np.zeros(0, np.int32)
        del coded, chunks, flats
        order = np.argsort(-np.bincount(codes, minlength=len(words)), kind="stable")  # ties: first seen first
        dtype = np.uint16 if len(words) + 2 <= 65536 else np.uint32
        rank = np.empty(len(words), dtype=dtype)
        rank[order] = np.arange(2, len(words) + 2)
        self.vocab = words[order]
        self._vocab_list = self.vocab.tolist()
        self._words = None  # the vocabulary as a pyarrow array, for search
        self.ids, self.starts, at = [], [], 0
        for count, null in zip(lengths, nulls):
            self.starts.append(np.concatenate([[0], np.cumsum(count + 1)]))
            self.ids.append(self._place(rank[codes[at:at + count.sum()]], count, null, self.starts[-1]))
            at += int(count.sum())

    @staticmethod
    def _place(word_ids: np.ndarray, count: np.ndarray, null: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """One column's stream: each value's word ids, then 0; a missing value's (one empty word) id is 1."""
        out = np.zeros(int(starts[-1]), dtype=word_ids.dtype)
        ends = np.cumsum(count)
        for a in range(0, count.size, _CHUNK):  # word w of value k goes to w + k (one 0 per earlier value)
            b = min(a + _CHUNK, count.size)
            w0, w1 = int(ends[a] - count[a]), int(ends[b - 1])
            out[np.arange(w0, w1) + np.repeat(np.arange(a, b), count[a:b])] = word_ids[w0:w1]
        out[starts[:-1][null]] = _NULL
        return out

    def search(self, query: str) -> np.ndarray | None:
        """Rows where a value holds ``query`` (case-insensitive, as ``pyarrow.compute.match_substring``):
        the words holding it, then the rows holding such a word. None for a query with a space (it may
        span words: search the values themselves)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if " " in query:
            return None
        if self._words is None:
            self._words = pa.array(self.vocab, type=pa.string())
        flag = np.zeros(len(self.vocab) + 2, dtype=bool)
        flag[2:] = pc.match_substring(self._words, query, ignore_case=True).to_numpy(zero_copy_only=False)
        found = np.zeros(self.n, dtype=bool)
        for ids, starts in zip(self.ids, self.starts):
            if self.n:  # every value's span holds at least its end: no empty segment
                found |= np.logical_or.reduceat(flag[ids], starts[:-1])
        return found

    @property
    def n(self) -> int:
        return self.starts[0].size - 1 if self.starts else 0

    def encode(self, positions: np.ndarray) -> bytes:
        """The coded text of the rows at ``positions`` (what ``encode_text`` of their values decodes to)."""
        positions = np.asarray(positions, dtype=np.int64)
        ids = np.concatenate([_gather(ids, starts, positions) for ids, starts in zip(self.ids, self.starts)])
        used = np.bincount(ids, minlength=len(self.vocab) + 2)[2:] > 0
        vocab = self._vocab_list
        if not used.all():  # the answer's own vocabulary: the words it uses, in the run's order
            remap = np.zeros(len(self.vocab) + 2, dtype=self.ids[0].dtype)
            remap[1] = _NULL
            remap[2:][used] = np.arange(2, int(used.sum()) + 2)
            ids, vocab = remap[ids], self.vocab[used].tolist()
        return text_stream(self.columns, positions.size * len(self.columns), ids, vocab)


__all__ = ["TextCodes"]
