"""The explorer's search in headless Chromium, against a Python reference on every kind of query.

The page finds the rows holding a query without building their text: it marks the vocabulary
words that hold the query's longest word, then finds the values holding a marked word, by
``indexOf`` for a few rare words (giving up past a number of hits) or in one pass over the word
ids; a query with spaces is then checked on the text. Each of these paths is exercised here.

Skipped only when /usr/bin/chromium or the playwright package is missing.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

# the shared page: this module's `mapped` map, opened by conftest's open_page (offline, no page error)
import test_explorer_browser as explorer
import test_maps_browser as shared
from _browser import needs_browser

page = shared.page

pytestmark = needs_browser

N = 600
COMMON = ["a", "the", "dog", "runs", "on", "mat", "red", "blue", "sings", "over"]
RARE = ["Zebra", "zebras", "ZEBRA", "vertebra", "Hebrew", "Straße", "ÉCOLE", "Tschüss"]


def reference(records: pd.DataFrame, query: str) -> np.ndarray:
    """Positions of the rows with a value holding the query (trimmed, case-insensitive)."""
    q = query.strip().lower()
    if not q:
        return np.arange(len(records))
    found = np.zeros(len(records), dtype=bool)
    for col in records.columns:
        found |= np.array([isinstance(v, str) and q in v.lower() for v in records[col].tolist()])
    return np.flatnonzero(found)


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    from datacarto.maps.interactive import gold_probabilities, interactive_map

    metrics, logits, gold = explorer.make_metrics(11, N)
    rng = np.random.default_rng(2)

    def sentence(k: int) -> str:
        words = list(rng.choice(COMMON, k))
        if rng.random() < 0.35:  # "kiwi" ends up in about a third of the rows: too many hits for indexOf
            words.insert(int(rng.integers(0, k)), "kiwi" if rng.random() < 0.9 else "Kiwis")
        for _ in range(int(rng.random() < 0.08) + int(rng.random() < 0.02)):  # rare words, twice in some values
            words.insert(int(rng.integers(0, k)), str(rng.choice(RARE)))
        return " ".join(words)

    premise = [sentence(int(rng.integers(3, 9))) for _ in range(N)]
    hypothesis = [sentence(int(rng.integers(2, 5))) for _ in range(N)]
    note = [None if i % 7 == 0 else f"note {i} " + ("ZEBRA crossing" if i % 97 == 5 else "plain") for i in range(N)]
    premise[3], hypothesis[4], hypothesis[9], note[8] = "", "zebra", "Tschüss dog runs", "wild kiwi zebra"
    records = pd.DataFrame({"premise": premise, "hypothesis": hypothesis, "note": note}, index=metrics.index)
    path = tmp_path_factory.mktemp("search") / "map.html"
    interactive_map(metrics, records, gold_probs=gold_probabilities(logits, gold), label_names=explorer.LABELS,
                    path=path)
    return {"path": path, "metrics": metrics, "records": records}


QUERIES = [
    "zebr",          # a prefix of 4 vocabulary words (Zebra, zebras, ZEBRA, zebra): indexOf, in all three columns
    "Zebra",         # case-insensitive
    "  zebra ",      # trimmed
    "ebr",           # inside 6 words (also vertebra, Hebrew): the pass over every word id
    "kiwi",          # 2 words in a third of the rows: indexOf gives up, the pass decides
    "crossing",      # one word, only in the third column
    "ZEBRA crossing",  # spaces: the text of the rows holding the longest word is checked
    "a zebra",       # spaces, from the first word's end to the next word
    "g ru",          # across a word boundary ("dog runs")
    "kiwi zebra",    # spaces, where the longest word has too many hits for indexOf
    "straße",        # non-ASCII, lower-cased
    "école",
    "tschüss dog",
    "note 1",        # a number's prefix: note 1, note 10..., note 100...
    "e",             # inside most words
    "qqq",           # in no word
    "",              # every row
]


def test_search_finds_exactly_the_rows_a_python_reference_finds(page, mapped):
    records = mapped["records"]
    for query in QUERIES:
        expected = reference(records, query)
        assert 0 < expected.size < N or query in ("qqq", "", "e"), query  # the data exercise the query
        n = page.evaluate(f"window.datacarto.search({json.dumps(query)})")
        assert n == expected.size, query
        assert page.evaluate("window.datacarto.tableRows()") == explorer.ids_of(mapped, expected), query
        assert page.evaluate("window.datacarto.mapIndices()") == expected.tolist(), query


def test_search_inside_a_filter_and_a_sort(page, mapped):
    records, metrics = mapped["records"], mapped["metrics"]
    page.evaluate("window.datacarto.sort('confidence', false)")
    n = page.evaluate("window.datacarto.filter({region: ['easy-to-learn'], search: 'zebr'})")
    region = metrics["region"].astype(str).to_numpy()
    expected = np.intersect1d(reference(records, "zebr"), np.flatnonzero(region == "easy-to-learn"))
    assert 0 < expected.size and n == expected.size
    conf = metrics["confidence"].to_numpy(np.float32)[expected].astype(np.float64)
    ordered = expected[np.lexsort((expected, conf))]
    assert page.evaluate("window.datacarto.tableRows()") == explorer.ids_of(mapped, ordered)
    # a bad filter changes nothing, the search included
    with pytest.raises(Exception, match="unknown region"):
        page.evaluate("window.datacarto.filter({region: ['nowhere'], search: 'kiwi'})")
    assert page.evaluate("window.datacarto.tableRows()") == explorer.ids_of(mapped, ordered)
    assert page.input_value("#dc-search") == "zebr"
