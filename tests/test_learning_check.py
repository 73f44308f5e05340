"""The warning for maps of a model that barely learned: fires on one that learned nothing, not on one that learned."""

from __future__ import annotations

import numpy as np

from datacarto.dynamics.store import Dynamics
from datacarto.learning_check import learning_warning
from datacarto.metrics import assign_regions, compute_metrics


def _dynamics(learned: bool, n=300, epochs=4, seed=0):
    rng = np.random.default_rng(seed)
    gold = np.arange(n) % 3
    logits = rng.normal(0, 0.3, (n, epochs, 3)).astype(np.float32)
    if learned:  # the gold logit grows over epochs for 90% of the rows
        learnt = rng.random(n) < 0.9
        for e in range(epochs):
            logits[np.flatnonzero(learnt), e, gold[learnt]] += 1.0 + e
    return Dynamics(ids=np.arange(n), gold=gold, logits=logits)


def test_warns_for_a_model_that_learned_nothing():
    metrics = compute_metrics(_dynamics(False))
    metrics["region"] = assign_regions(metrics)
    message = learning_warning(metrics)
    assert message is not None and message.startswith("the model barely learned")
    accuracy = float(np.mean(metrics["last_pred"] == metrics["gold"]))
    assert f"last-epoch accuracy {accuracy:.2f}" in message and "chance (majority class) 0.33" in message


def test_silent_for_a_model_that_learned():
    metrics = compute_metrics(_dynamics(True))
    metrics["region"] = assign_regions(metrics)
    assert learning_warning(metrics) is None


def test_cli_map_and_metrics_say_it(tmp_path, capsys):
    """A run of a model that learned nothing: `datacarto metrics` and `map` print the warning, the map's title says it."""
    from datacarto.cli import main
    from datacarto.dynamics.store import DynamicsWriter

    dyn = _dynamics(False)
    writer = DynamicsWriter(tmp_path / "run" / "training_dynamics")
    for e in range(dyn.n_epochs):
        writer.write_epoch(e, dyn.ids, dyn.gold, dyn.logits[:, e])
    assert main(["metrics", str(tmp_path / "run")]) == 0
    assert "datacarto: warning: the model barely learned the training set" in capsys.readouterr().err
    assert main(["map", str(tmp_path / "run"), "--html", str(tmp_path / "map.html")]) == 0
    assert "the model barely learned" in capsys.readouterr().err
    assert "the model barely learned: regions are relative" in (tmp_path / "map.html").read_text()


def _compressed(n=300, epochs=3, seed=0):
    """A model that ranks the gold class first for 85% of the rows, with probabilities near uniform
    (p(gold) about 0.3-0.45: a small head early in fine-tuning, as the quick start's MiniLM was)."""
    rng = np.random.default_rng(seed)
    gold = np.arange(n) % 3
    logits = rng.normal(0, 0.05, (n, epochs, 3)).astype(np.float32)
    right = rng.random(n) < 0.85
    for e in range(epochs):
        logits[np.flatnonzero(right), e, gold[right]] += 0.15 + 0.05 * e
    return Dynamics(ids=np.arange(n), gold=gold, logits=logits)


def test_says_when_confidences_are_compressed():
    metrics = compute_metrics(_compressed())
    metrics["region"] = assign_regions(metrics)
    assert metrics["confidence"].max() < 0.5 and (metrics["last_pred"] == metrics["gold"]).mean() > 0.8
    message = learning_warning(metrics)
    assert message is not None and message.startswith("the confidences are compressed") and "\n" not in message
    q90 = float(np.quantile(metrics["confidence"], 0.9))
    accuracy = float(np.mean(metrics["last_pred"] == metrics["gold"]))
    assert f"below {q90:.2f}" in message and "chance 0.33" in message and f"accuracy is {accuracy:.2f}" in message


def test_map_title_names_the_compressed_confidences(tmp_path, capsys):
    from datacarto.cli import main
    from datacarto.dynamics.store import DynamicsWriter

    dyn = _compressed()
    writer = DynamicsWriter(tmp_path / "run" / "training_dynamics")
    for e in range(dyn.n_epochs):
        writer.write_epoch(e, dyn.ids, dyn.gold, dyn.logits[:, e])
    assert main(["map", str(tmp_path / "run"), "--html", str(tmp_path / "map.html")]) == 0
    assert "datacarto: warning: the confidences are compressed" in capsys.readouterr().err
    page = (tmp_path / "map.html").read_text()
    assert "the confidences are compressed: regions are relative" in page and "barely learned" not in page
