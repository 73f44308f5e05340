"""``datacarto demo``: the whole pipeline on the built-in generated NLI data with all-MiniLM-L6-v2, offline.

The data (``datacarto.demo_data``) has 8% flipped training labels and 10% deliberately vague
pairs (``is_ambiguous``), so the report can show where each lands on the data map (the flipped ones
in hard-to-learn; the vague ones not in ambiguous more than chance: docs/maps.md), how many wrong
labels the estimate finds and whether retraining without them beats a random-drop control. Sized to finish in a
few minutes on a laptop CPU; ``--n-train`` and ``--epochs`` trade time for a denser map.
"""

from __future__ import annotations

import argparse
from pathlib import Path

#: Training arguments of the demo: a higher learning rate than the library default so the small
#: generated set is learned in 3 epochs; no checkpoints (the demo reruns in minutes).
DEMO_TRAINING_ARGS = {
    "learning_rate": 1e-4,
    "per_device_train_batch_size": 16,
    "per_device_eval_batch_size": 128,
    "warmup_steps": 5,
    "save_strategy": "no",
    "logging_strategy": "epoch",
    "report_to": "none",
}
DEMO_FOCUS_TRAINING_ARGS = {"learning_rate": 5e-5, "num_train_epochs": 1}
#: the cleaning recipes of the demo: the flagged labels dropped, or relabelled to the suggested label, each
#: model retrained from the pretrained model beside a random-drop control (docs/pipeline.md)
DEMO_CLEANING_RECIPES = ({"name": "drop-flagged", "action": "drop"}, {"name": "relabel-flagged", "action": "relabel"})


def demo_config(output_dir: str | Path, *, n_train: int = 600, n_validation: int = 300, n_test: int = 300,
                epochs: int = 3, flip: float = 0.08, ambiguous: float = 0.1, seed: int = 0, model: str | None = None):
    """Write the demo data under ``<output_dir>/demo_data`` and return the demo's PipelineConfig."""
    from ..data import minilm_path
    from ..demo_data import LABEL_NAMES, write_demo_dataset
    from ..pipeline import DEFAULT_RECIPES, PipelineConfig

    output_dir = Path(output_dir)
    model = model or minilm_path()  # fails early with a clear message without the demo extra
    paths = write_demo_dataset(output_dir / "demo_data", n_train=n_train, n_validation=n_validation, n_test=n_test,
                               flip=flip, ambiguous=ambiguous, seed=seed)
    return PipelineConfig(
        model=model, dataset=str(paths["train"]), validation=str(paths["validation"]),
        test=str(paths["test"]) if n_test > 0 else None,
        output_dir=str(output_dir), text_columns=["premise", "hypothesis"], class_names=list(LABEL_NAMES),
        max_length=64, training_args={**DEMO_TRAINING_ARGS, "num_train_epochs": epochs},
        focus_training_args=dict(DEMO_FOCUS_TRAINING_ARGS), noise_column="is_flipped", seed=seed,
        recipes=[dict(r) for r in (*DEFAULT_RECIPES, *DEMO_CLEANING_RECIPES)],
        title=f"datacarto demo: generated NLI, {flip:.0%} flipped labels, all-MiniLM-L6-v2",
    ).validate()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="datacarto demo", description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", "--output_dir", default="demo_output", help="where everything goes")
    parser.add_argument("--n-train", "--n_train", type=int, default=600, help="training examples (600)")
    parser.add_argument("--n-validation", "--n_validation", type=int, default=300, help="validation examples (300)")
    parser.add_argument("--n-test", "--n_test", type=int, default=300, help="test examples (300)")
    parser.add_argument("--epochs", type=int, default=3, help="baseline epochs (3)")
    parser.add_argument("--flip", type=float, default=0.08, help="share of flipped training labels (0.08)")
    parser.add_argument("--ambiguous", type=float, default=0.1, help="share of vague pairs, is_ambiguous (0.1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=None, help="another model folder or hub name (default: the bundled "
                                                       "all-MiniLM-L6-v2)")
    parser.add_argument("--force", default=None, help="comma-separated stages to redo, or 'all'")
    parser.add_argument("--quiet", action="store_true", help="no stage headers")
    args = parser.parse_args(argv)

    from ..pipeline import RunLayout, run_pipeline

    if args.epochs < 1:
        from ..errors import DatacartoError

        raise DatacartoError(f"--epochs must be at least 1, got {args.epochs}")
    config = demo_config(args.output_dir, n_train=args.n_train, n_validation=args.n_validation, n_test=args.n_test,
                         epochs=args.epochs, flip=args.flip, ambiguous=args.ambiguous, seed=args.seed,
                         model=args.model)
    force = None
    if args.force:
        force = True if args.force == "all" else [s.strip() for s in args.force.split(",") if s.strip()]
    result = run_pipeline(config, force=force, quiet=args.quiet)
    acc = result.accuracy["test_accuracy"].dropna()
    if "baseline" in acc.index:
        best = acc.idxmax()
        print(f"test accuracy: baseline {acc['baseline']:.1%}; best of {len(acc)} models and ensembles: "
              f"{best} {acc[best]:.1%}")
    layout = RunLayout(result.output_dir)
    _print_noise(layout)
    from ..pipeline.report import label_error_lines

    for line in label_error_lines(layout):  # the report's first section: the flagged labels, the retrained models
        print(line)
    print(f"report: {layout.report_html.resolve()}")
    print(f"        {layout.report_md.resolve()}")
    print(f"interactive map: {layout.data_map_html.resolve()}")
    return 0


def _print_noise(layout) -> None:
    """One line: where the flipped labels landed (the demo's point)."""
    from ..dynamics.store import load_examples
    from ..pipeline.report import noise_summary, read_train_metrics, vague_summary

    examples = load_examples(layout.baseline_dir)
    if examples is None or "is_flipped" not in examples.columns:
        return
    metrics = read_train_metrics(layout)
    ns = noise_summary(metrics, examples["is_flipped"].reindex(metrics.index).fillna(False).to_numpy(bool))
    print(f"flipped labels in hard-to-learn: {ns['in_hard']} of {ns['n_noisy']} "
          f"(AUROC of low confidence: {ns['auroc_confidence']:.3f})")
    if "is_ambiguous" in examples.columns:
        vs = vague_summary(metrics, examples["is_ambiguous"].reindex(metrics.index).fillna(False).to_numpy(bool))
        print(f"vague pairs in ambiguous: {vs['in_region']} of {vs['n_marked']}, a region of "
              f"{vs['region_size'] / max(vs['n'], 1):.0%} of the data (AUROC of high variability: "
              f"{vs['auroc']['variability']:.3f})")
