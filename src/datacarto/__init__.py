"""datacarto: dataset cartography and focused training for Hugging Face text classifiers.

Names are imported lazily, so ``import datacarto`` stays light and the numeric core
(metrics, regions, selection) never imports torch or transformers.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    # record and store
    "CartographyMixin": "datacarto.record",
    "CartographyTrainer": "datacarto.record",
    "CartographyCallback": "datacarto.record",
    "PredictEachEpoch": "datacarto.record",
    "end_distributed": "datacarto.record.distributed",
    "Dynamics": "datacarto.dynamics.store",
    "DynamicsWriter": "datacarto.dynamics.store",
    "load_dynamics": "datacarto.dynamics.store",
    "open_dynamics": "datacarto.dynamics.store",
    "load_epoch_columns": "datacarto.dynamics.store",
    "load_examples": "datacarto.dynamics.store",
    "import_allenai": "datacarto.dynamics.interop",
    # comparing runs
    "compare_runs": "datacarto.dynamics.compare",
    "transition_matrix": "datacarto.dynamics.compare",
    "export_allenai": "datacarto.dynamics.interop",
    # data loading
    "load_table": "datacarto.data",
    # metrics and regions
    "compute_metrics": "datacarto.metrics",
    "assign_regions": "datacarto.metrics",
    "get_metrics": "datacarto.dynamics.cache",
    "REGIONS": "datacarto.metrics",
    "SCORES": "datacarto.metrics",
    "Score": "datacarto.metrics",
    "register_score": "datacarto.metrics",
    # selection
    "select": "datacarto.selection",
    "random_control": "datacarto.selection",
    "trajectory_clusters": "datacarto.trajectory",
    "loss_trajectories": "datacarto.dynamics.generative",
    "load_token_stats": "datacarto.dynamics.generative",
    "focused_dataset": "datacarto.dynamics.subsets",
    "export_subset": "datacarto.dynamics.subsets",
    "get_focused_sets": "datacarto.dynamics.subsets",
    # maps
    "plot_data_map": "datacarto.maps.static",
    "interactive_map": "datacarto.maps.interactive",
    "show": "datacarto.maps.notebook",
    # focused training and ensembles
    "Ensemble": "datacarto.train.ensemble",
    "train_focused": "datacarto.train.focused",
    "train_baseline": "datacarto.train.baseline",
    "evaluate_by_region": "datacarto.evaluation",
    "write_report": "datacarto.pipeline.report",
    "make_demo_dataset": "datacarto.demo_data",
    # audit
    "audit_scores": "datacarto.noise",
    "inject_label_noise": "datacarto.noise",
    # label errors: how many, which, what they should be; corrections
    "find_label_errors": "datacarto.label_errors",
    "run_label_errors": "datacarto.dynamics.label_errors",
    "review_queue": "datacarto.dynamics.label_errors",
    "write_review_queue": "datacarto.dynamics.review",
    "apply_corrections": "datacarto.dynamics.corrections",
    # is one model better than another on the same rows
    "accuracy_interval": "datacarto.significance",
    "compare_paired": "datacarto.significance",
    "mcnemar_test": "datacarto.significance",
    "paired_bootstrap": "datacarto.significance",
    # pipeline
    "run_pipeline": "datacarto.pipeline",
    "DatacartoError": "datacarto.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'datacarto' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
