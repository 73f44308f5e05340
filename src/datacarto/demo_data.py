"""The built-in demo data set: generated premise/hypothesis pairs (NLI) with known label noise.

``make_demo_dataset`` writes small SNLI-like train/validation/test splits from templates with a
varied vocabulary (people, activities, places and how hypotheses relate to them), so a small
pretrained encoder such as all-MiniLM-L6-v2 learns the task in a couple of epochs. Two kinds of
hard cases are planted, each with an exact, seeded share and recorded in a column:

* ``is_flipped``: the label was replaced by another one (training split only: ``flip``);
  ``original_label`` keeps the template's label. These should land in hard-to-learn.
* ``is_ambiguous``: the hypothesis is vague ("A man is busy.") and its label is drawn from two
  plausible ones, so no model can be sure (every split: ``ambiguous``). These are ambiguous to a
  person, not necessarily in the data map's sense (high variability across epochs): a model
  learns them as a split, fairly steady p(gold), and on the default demo they land in the
  ambiguous region no more often than chance (docs/maps.md, "Vague pairs and the ambiguous
  region"); the report counts them like the flipped labels.

Flipped and ambiguous rows are disjoint; no premise/hypothesis pair appears twice across splits.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from ._validation import check_fraction, round_half_up
from .errors import DatacartoError

LABEL_NAMES = ["entailment", "neutral", "contradiction"]
ENTAILMENT, NEUTRAL, CONTRADICTION = 0, 1, 2

# (phrase, plural, hypernym phrase)
_SUBJECTS = [
    ("a man", False, "a person"), ("a woman", False, "a person"), ("an old man", False, "a person"),
    ("an old woman", False, "a person"), ("a young girl", False, "a child"), ("a little boy", False, "a child"),
    ("a teenager", False, "a young person"), ("a chef", False, "a worker"), ("a nurse", False, "a worker"),
    ("a farmer", False, "a worker"), ("a firefighter", False, "a worker"), ("a police officer", False, "a worker"),
    ("a tourist", False, "a traveler"), ("a musician", False, "an artist"), ("a student", False, "a person"),
    ("a bearded man", False, "a man"), ("a woman in a red dress", False, "a woman"),
    ("two friends", True, "two people"), ("an elderly couple", True, "two people"),
    ("a group of students", True, "some people"), ("three children", True, "some kids"),
    ("a soccer team", False, "a group of people"), ("two sisters", True, "two girls"),
    ("a family", False, "a group of people"), ("several workers", True, "some people"),
]

# (activity, generalization, is it done indoors (True), outdoors (False) or either (None))
_ACTIVITIES = [
    ("playing a guitar", "playing music", None), ("reading a newspaper", "reading", None),
    ("riding a bicycle", "riding a bike", False), ("cooking pasta", "preparing food", True),
    ("painting a fence", "painting", False), ("eating a sandwich", "eating", None),
    ("swimming in a lake", "swimming", False), ("climbing a rock wall", "climbing", None),
    ("playing soccer", "playing a sport", False), ("dancing to loud music", "dancing", None),
    ("washing a car", "cleaning something", False), ("writing a letter", "writing", None),
    ("fixing a broken chair", "repairing something", None), ("selling fresh fruit", "selling food", None),
    ("taking photos of birds", "using a camera", False), ("singing a song", "singing", None),
    ("drinking hot coffee", "having a drink", None), ("carrying a heavy box", "holding something", None),
    ("planting flowers", "gardening", False), ("baking bread", "making food", True),
    ("flying a kite", "playing with a toy", False), ("typing on a laptop", "using a computer", None),
    ("knitting a scarf", "making clothes", None), ("skating on ice", "skating", False),
]

# (place, indoors?)
_PLACES = [
    ("in a park", False), ("on a sunny beach", False), ("in a small kitchen", True), ("on a busy street", False),
    ("in a quiet library", True), ("at an outdoor market", False), ("in the snow", False),
    ("in a crowded room", True), ("near a river", False), ("in a garage", True), ("in a backyard", False),
    ("inside a cafe", True), ("on a mountain trail", False), ("in a classroom", True),
    ("at a train station", True), ("in a field", False),
]

_TIMES = ["", "", "", " in the morning", " at night", " on a rainy day", " after lunch", " during the weekend"]
_PURPOSES = ["for a school project", "for a contest", "to earn money", "for the first time",
             "for a birthday party", "to impress a friend", "for a television show", "as a hobby"]
_COMPANIONS = ["with a best friend", "with their family", "with a coworker", "with a neighbor"]
_STATES = ["very happy", "tired after work", "on vacation", "waiting for a friend", "late for a meeting",
           "a professional", "famous", "celebrating a birthday"]
_ASLEEP = ["sleeping in bed", "taking a nap", "lying asleep on a couch"]
_AMBIGUOUS = {  # vague hypotheses: label drawn from the two plausible ones
    (ENTAILMENT, NEUTRAL): ["busy", "having fun", "working", "enjoying the day", "making noise",
                            "concentrating", "being creative", "in a good mood"],
    (NEUTRAL, CONTRADICTION): ["alone", "in a hurry", "bored", "resting", "being lazy", "at home",
                               "sitting down", "upset"],
}


def _be(plural: bool) -> str:
    return "are" if plural else "is"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _premise(rng: random.Random):
    subj, plural, hyper = rng.choice(_SUBJECTS)
    act, general, act_inside = rng.choice(_ACTIVITIES)
    places = [p for p in _PLACES if act_inside is None or p[1] == act_inside]
    place, inside = rng.choice(places)
    text = f"{_cap(subj)} {_be(plural)} {act} {place}{rng.choice(_TIMES)}."
    return text, dict(subj=subj, plural=plural, hyper=hyper, act=act, general=general, inside=inside,
                      place=place)


def _hypothesis(rng: random.Random, label: int, p: dict) -> str:
    be, subj, hyper = _be(p["plural"]), p["subj"], p["hyper"]
    if label == ENTAILMENT:
        options = [
            f"{_cap(hyper)} {be} {p['general']}.",
            f"{_cap(subj)} {be} {'inside' if p['inside'] else 'outside'}.",
            f"Someone is {p['general']}.",
            f"{_cap(subj)} {be} {p['act']}.",
            f"There {be} {subj} {p['place']}.",
            f"{_cap(hyper)} {be} {p['general']} {p['place']}.",
        ]
    elif label == NEUTRAL:
        options = [
            f"{_cap(subj)} {be} {p['act']} {rng.choice(_PURPOSES)}.",
            f"{_cap(subj)} {be} {p['general']} {rng.choice(_COMPANIONS)}.",
            f"{_cap(subj)} {be} {rng.choice(_STATES)}.",
            f"{_cap(hyper)} {be} {p['act']} {rng.choice(_PURPOSES)}.",
            f"{_cap(subj)} {be} {p['general']} because {'they are' if p['plural'] else 'it is'} "
            f"{rng.choice(['their job', 'fun', 'a tradition', 'required'])}.",
        ]
    else:
        other_act, other_general, _ = rng.choice([a for a in _ACTIVITIES if a[0] != p["act"]])
        other_places = [q for q, inside in _PLACES if inside != p["inside"]]
        options = [
            f"{_cap(subj)} {be} {rng.choice(_ASLEEP)}.",
            f"Nobody is {p['general']}.",
            f"{_cap(subj)} {be} not {p['general']}.",
            f"{_cap(subj)} {be} {'outside' if p['inside'] else 'inside'}.",
            f"{_cap(subj)} {be} {other_act} {rng.choice(other_places)} instead.",
            f"{_cap(hyper)} {be} {other_general} {rng.choice(other_places)}.",
        ]
    return rng.choice(options)


def _exact(n: int, share: float, name: str) -> int:
    """``share x n`` rows, rounded half up (the library's one rule: 0.15 x 30 gives 5)."""
    return round_half_up(check_fraction(share, name), n)


def _split(n: int, *, flip: float, ambiguous: float, rng: random.Random, seen: set) -> dict[str, list]:
    n_amb = _exact(n, ambiguous, "ambiguous")
    n_flip = _exact(n, flip, "flip")
    if n_amb + n_flip > n:
        raise DatacartoError(f"flip ({flip}) and ambiguous ({ambiguous}) shares add up to more than the data set")
    order = list(range(n))
    rng.shuffle(order)
    amb_rows = set(order[:n_amb])
    flip_rows = set(order[n_amb:n_amb + n_flip])  # disjoint from the ambiguous rows
    cols: dict[str, list] = {k: [] for k in ("premise", "hypothesis", "label", "original_label",
                                              "is_flipped", "is_ambiguous")}
    n_plain = 0
    for i in range(n):
        for _ in range(1000):  # a fresh pair (no duplicates within or across splits)
            premise, parts = _premise(rng)
            if i in amb_rows:
                pair, vague = rng.choice(list(_AMBIGUOUS.items()))
                hypothesis = f"{_cap(parts['subj'])} {_be(parts['plural'])} {rng.choice(vague)}."
                label = rng.choice(pair)
            else:
                label = n_plain % 3  # template labels cycle: balanced classes
                hypothesis = _hypothesis(rng, label, parts)
            if (premise, hypothesis) not in seen:
                break
        seen.add((premise, hypothesis))
        n_plain += i not in amb_rows
        shown = label
        if i in flip_rows:
            shown = rng.choice([k for k in range(3) if k != label])
        cols["premise"].append(premise)
        cols["hypothesis"].append(hypothesis)
        cols["label"].append(shown)
        cols["original_label"].append(label)
        cols["is_flipped"].append(i in flip_rows)
        cols["is_ambiguous"].append(i in amb_rows)
    # shuffle rows so labels are not in a fixed cycle
    perm = list(range(n))
    rng.shuffle(perm)
    return {k: [v[j] for j in perm] for k, v in cols.items()}


def make_demo_dataset(n_train: int = 600, n_validation: int = 300, n_test: int = 300, *, flip: float = 0.08,
                      ambiguous: float = 0.1, seed: int = 0) -> dict:
    """Train/validation/test ``datasets.Dataset`` splits of generated NLI pairs, seeded.

    Columns: ``premise``, ``hypothesis``, ``label`` (ClassLabel entailment/neutral/contradiction),
    ``original_label``, ``is_flipped``, ``is_ambiguous``. Exactly ``round_half_up(flip * n_train)`` training
    labels are flipped (validation and test stay clean, so accuracy measures the true task) and
    exactly ``round_half_up(ambiguous * n)`` rows of each split are ambiguous pairs.
    """
    import datasets

    for name, n in (("n_train", n_train), ("n_validation", n_validation), ("n_test", n_test)):
        if not isinstance(n, int) or n < 0:
            raise DatacartoError(f"{name} must be a non-negative integer, got {n!r}")
    if n_train == 0:
        raise DatacartoError("n_train must be at least 1")
    features = datasets.Features({
        "premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
        "label": datasets.ClassLabel(names=LABEL_NAMES), "original_label": datasets.Value("int64"),
        "is_flipped": datasets.Value("bool"), "is_ambiguous": datasets.Value("bool"),
    })
    rng = random.Random(seed)
    seen: set = set()
    out = {}
    for split, n, f in (("train", n_train, flip), ("validation", n_validation, 0.0), ("test", n_test, 0.0)):
        out[split] = datasets.Dataset.from_dict(_split(n, flip=f, ambiguous=ambiguous, rng=rng, seen=seen),
                                                features=features)
    return out


def write_demo_dataset(directory, **kwargs) -> dict:
    """Write ``make_demo_dataset(**kwargs)`` as ``<directory>/<split>.jsonl``; returns split -> path."""
    from ._io import write_text_atomic

    directory = Path(directory)
    paths = {}
    for split, ds in make_demo_dataset(**kwargs).items():
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in ds.to_list())
        path = directory / f"{split}.jsonl"
        # unchanged content keeps the file (and its mtime), so a rerun finds its stages up to date
        if not (path.is_file() and path.read_text(encoding="utf-8") == text):
            write_text_atomic(path, text)
        paths[split] = path
    return paths


__all__ = ["make_demo_dataset", "write_demo_dataset", "LABEL_NAMES"]
