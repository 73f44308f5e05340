"""``report.html`` and ``report.md`` of a pipeline run, built from what the run left on disk.

``write_report(output_dir)`` reads the run folder written by :func:`datacarto.pipeline.run_pipeline`
(config.json, stages/*.json, metrics/, evaluation/, ensembles.json, maps/ and the baseline's recorded
examples), so a finished run can be reported again without training. Both files hold the same
sections: data map, regions (counts, label mix, examples), label noise (when a column marks known
wrong labels, as in the demo), focused subsets, accuracy, time per stage, config and versions.
The HTML page is self-contained (the PNG is embedded) and escapes every piece of record text.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._io import write_text_atomic
from .errors import DatacartoError
from .metrics import REGIONS

REGION_HELP = {
    "easy-to-learn": "high confidence, low variability: the model gets these right from the start",
    "ambiguous": "high variability: the model keeps changing its mind about these",
    "hard-to-learn": "low confidence, low variability: the model rarely gives the gold label (often label errors)",
}
# which examples a region shows first (as select's region ranking): (metric, ascending)
_REGION_ORDER = {"easy-to-learn": ("confidence", False), "ambiguous": ("variability", False),
                 "hard-to-learn": ("confidence", True)}


# ----------------------------------------------------------------------------------------------
# a tiny document model rendered twice (markdown and HTML)


class _Doc:
    def __init__(self):
        self.blocks: list[tuple] = []

    def h(self, level: int, text: str):
        self.blocks.append(("h", level, text))

    def p(self, text: str):
        self.blocks.append(("p", text))

    def table(self, headers: list[str], rows: list[list[Any]]):
        self.blocks.append(("table", headers, rows))

    def img(self, path: Path, rel: str, alt: str):
        self.blocks.append(("img", path, rel, alt))

    def link(self, href: str, text: str, before: str = ""):
        self.blocks.append(("link", href, text, before))

    def code(self, text: str):
        self.blocks.append(("code", text))

    def markdown(self) -> str:
        out = []
        for b in self.blocks:
            kind = b[0]
            if kind == "h":
                out.append("#" * b[1] + " " + _md_inline(b[2]))
            elif kind == "p":
                out.append(_md_inline(b[1]))
            elif kind == "table":
                headers, rows = b[1], b[2]
                out.append("| " + " | ".join(_md_cell(h) for h in headers) + " |")
                out.append("|" + "|".join("---" for _ in headers) + "|")
                out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            elif kind == "img":
                out.append(f"![{_md_inline(b[3])}]({b[2]})")
            elif kind == "link":
                out.append(f"{_md_inline(b[3])}[{_md_inline(b[2])}]({b[1]})")
            elif kind == "code":
                fence = "````" if "```" in b[1] else "```"
                out.append(f"{fence}\n{b[1]}\n{fence}")
            out.append("")
        return "\n".join(out)

    def html(self, title: str) -> str:
        body = []
        for b in self.blocks:
            kind = b[0]
            if kind == "h":
                slug = _slug(b[2])
                body.append(f'<h{b[1]} id="{slug}">{html.escape(b[2])}</h{b[1]}>')
            elif kind == "p":
                body.append(f"<p>{html.escape(b[1])}</p>")
            elif kind == "table":
                head = "".join(f"<th>{html.escape(str(h))}</th>" for h in b[1])
                rows = "".join("<tr>" + "".join(f"<td>{html.escape(_text(c))}</td>" for c in row) + "</tr>"
                               for row in b[2])
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            elif kind == "img":
                data = base64.b64encode(Path(b[1]).read_bytes()).decode("ascii")
                body.append(f'<p><img alt="{html.escape(b[3], quote=True)}" src="data:image/png;base64,{data}"></p>')
            elif kind == "link":
                body.append(f'<p>{html.escape(b[3])}<a href="{html.escape(b[1], quote=True)}">'
                            f"{html.escape(b[2])}</a></p>")
            elif kind == "code":
                body.append(f"<pre><code>{html.escape(b[1])}</code></pre>")
        return (
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n"
        )


_CSS = (
    "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;"
    "padding:0 1em;color:#222;line-height:1.45}"
    "table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.92em}"
    "th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}"
    "th{background:#f2f2f2}img{max-width:100%;border:1px solid #ddd}"
    "pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:.85em}h2{margin-top:1.6em;"
    "border-bottom:1px solid #ddd}"
)


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-")


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return str(value)


def _md_inline(text: str) -> str:
    return str(text).replace("\r", " ").replace("\n", " ")


def _md_cell(value: Any) -> str:
    text = _md_inline(_text(value))
    for ch in ("\\", "|", "<", ">", "*", "_", "`", "[", "]"):
        text = text.replace(ch, "\\" + ch)
    return text


def pct(value: Any) -> str:
    """An accuracy or share as the report prints it: ``"85.3%"`` (``"–"`` when missing)."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    return f"{100 * float(value):.1f}%"


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


# ----------------------------------------------------------------------------------------------
# reading the run folder


def _read_json(path: Path, default=None):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def _stage_records(out: Path) -> dict[str, dict]:
    from .pipeline import STAGES

    records = {}
    for name in STAGES:
        rec = _read_json(out / "stages" / f"{name}.json")
        if rec is not None:
            records[name] = rec
    return records


def _metrics(out: Path) -> pd.DataFrame:
    path = out / "metrics" / "train.parquet"
    if not path.is_file():
        raise DatacartoError(f"{path} not found: run the pipeline's metrics stage first")
    return pd.read_parquet(path).set_index("row_id")


def noise_summary(metrics: pd.DataFrame, is_noisy: np.ndarray) -> dict[str, Any]:
    """How many known-wrong labels fall in hard-to-learn, and how well low confidence finds them."""
    is_noisy = np.asarray(is_noisy, dtype=bool)
    region = metrics["region"].astype(object).to_numpy()
    n_noisy = int(is_noisy.sum())
    hard = region == "hard-to-learn"
    out = {"n": int(len(is_noisy)), "n_noisy": n_noisy, "in_hard": int((is_noisy & hard).sum()),
           "hard_size": int(hard.sum()), "auroc_confidence": float("nan"), "by_region": {}}
    for r in REGIONS:
        members = region == r
        out["by_region"][r] = {"n": int(members.sum()), "noisy": int((is_noisy & members).sum())}
    if 0 < n_noisy < len(is_noisy):
        try:
            from .audit import audit_scores
        except ImportError:
            audit_scores = None
        if audit_scores is not None:
            table = audit_scores(metrics, pd.Series(is_noisy, index=metrics.index), scores=["confidence"])
            out["auroc_confidence"] = float(table.set_index("score").loc["confidence", "auroc"])
        else:
            from sklearn.metrics import roc_auc_score

            out["auroc_confidence"] = float(roc_auc_score(is_noisy, -metrics["confidence"].to_numpy()))
    return out


def _noise_column(examples: pd.DataFrame | None, name: str | None) -> str | None:
    if examples is None:
        return None
    if name is not None:
        if name not in examples.columns:
            raise DatacartoError(f"noise column {name!r} is not a column of the training data "
                                 f"(columns: {list(examples.columns)})")
        return name
    return "is_flipped" if "is_flipped" in examples.columns else None


# ----------------------------------------------------------------------------------------------
# the report


def write_report(output_dir: str | os.PathLike, *, title: str | None = None, noise_column: str | None = None,
                 n_examples: int = 5) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` into the pipeline run ``output_dir``; returns both paths.

    ``noise_column``: a boolean column of the training data marking known-wrong labels (default:
    ``is_flipped`` when present, as in the demo); adds the label-noise section.
    """
    from .dynamics.store import load_examples, package_versions

    out = Path(output_dir)
    config = _read_json(out / "config.json", {})
    stages = _stage_records(out)
    title = title or config.get("title") or "datacarto report"
    data = stages.get("data", {}).get("summary", {})
    label_names = data.get("label_names") or []
    text_columns = data.get("text_columns") or []
    metrics = _metrics(out)
    examples = load_examples(out / "baseline")
    if examples is not None:
        examples = examples.reindex(metrics.index)

    doc = _Doc()
    doc.h(1, title)
    rows = data.get("rows", {})
    doc.p(f"Model: {config.get('model')}. Training examples: {rows.get('train', len(metrics)):,}; validation: "
          f"{rows.get('validation', 0):,}; test: {rows.get('test', 0):,}. Labels: {', '.join(label_names)}. "
          f"Generated {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}.")

    # data map
    doc.h(2, "Data map")
    png = out / "maps" / "data_map.png"
    if png.is_file():
        doc.img(png, "maps/data_map.png", "data map: variability (x) against confidence (y)")
    if (out / "maps" / "data_map_regions.png").is_file():
        doc.img(out / "maps" / "data_map_regions.png", "maps/data_map_regions.png", "data map coloured by region")
    doc.link("maps/data_map.html", "interactive data map (maps/data_map.html)", "Open the ")
    doc.p("Each point is one training example: confidence is the mean probability the model gave its gold "
          "label over the epochs, variability its standard deviation, and the colour how often it was "
          "predicted correctly.")

    # regions
    doc.h(2, "Regions")
    region = metrics["region"].astype(object)
    total = len(metrics)
    header = ["region", "examples", "share", *[f"label: {n}" for n in label_names], "meaning"]
    table = []
    gold = metrics["gold"].to_numpy()
    for r in REGIONS:
        members = (region == r).to_numpy()
        counts = np.bincount(gold[members], minlength=len(label_names)) if label_names else []
        table.append([r, int(members.sum()), pct(members.sum() / total if total else np.nan),
                      *[int(c) for c in counts], REGION_HELP[r]])
    doc.table(header, table)
    thresholds = stages.get("metrics", {}).get("summary", {}).get("attrs", {})
    if thresholds.get("variability_threshold") is not None:
        doc.p(f"Thresholds ({thresholds.get('method', 'quantile')}): ambiguous when variability > "
              f"{thresholds['variability_threshold']:.3f}; otherwise hard-to-learn when confidence <= "
              f"{thresholds.get('confidence_threshold', float('nan')):.3f}.")
    noise_col = _noise_column(examples, noise_column)
    extra = [c for c in (noise_col, "is_ambiguous") if c and examples is not None and c in examples.columns]
    for r in REGIONS:
        doc.h(3, f"Examples: {r}")
        metric, ascending = _REGION_ORDER[r]
        members = metrics[region == r].sort_values([metric], ascending=ascending, kind="stable").head(n_examples)
        if members.empty:
            doc.p("No example in this region.")
            continue
        rows_ = []
        for rid, row in members.iterrows():
            ex = examples.loc[rid] if examples is not None else None
            texts = [ex[c] if ex is not None and c in ex.index else "" for c in text_columns]
            g = int(row["gold"])
            rows_.append([int(rid), *texts, label_names[g] if g < len(label_names) else g,
                          f"{row['confidence']:.3f}", f"{row['variability']:.3f}", f"{row['correctness']:.2f}",
                          *[bool(ex[c]) if ex is not None else "" for c in extra]])
        doc.table(["row", *text_columns, "gold label", "confidence", "variability", "correctness", *extra], rows_)

    # label noise (demo)
    if noise_col is not None:
        noisy = examples[noise_col].fillna(False).astype(bool).to_numpy()
        ns = noise_summary(metrics, noisy)
        doc.h(2, "Label noise")
        doc.p(f"{ns['n_noisy']} of {ns['n']} training labels are known to be wrong (column {noise_col!r}). "
              f"{ns['in_hard']} of them ({pct(ns['in_hard'] / ns['n_noisy'] if ns['n_noisy'] else np.nan)}) "
              f"landed in hard-to-learn, a region of {ns['hard_size']} examples "
              f"({pct(ns['hard_size'] / ns['n'] if ns['n'] else np.nan)} of the data). AUROC of low confidence "
              f"for finding them: {_fmt_float(ns['auroc_confidence'])} (chance: 0.500).")
        doc.table(["region", "examples", "wrong labels", "share wrong"],
                  [[r, v["n"], v["noisy"], pct(v["noisy"] / v["n"] if v["n"] else np.nan)]
                   for r, v in ns["by_region"].items()])

    # subsets
    subsets = stages.get("select", {}).get("summary", {}).get("subsets", {})
    order = [r.get("name") for r in config.get("recipes") or [] if isinstance(r, dict)]
    subsets = {n: subsets[n] for n in [*order, *subsets] if n in subsets}  # config order
    if subsets:
        doc.h(2, "Focused subsets")
        rows_ = []
        for name, s in subsets.items():
            recipe = ", ".join(f"{k}={v}" for k, v in s["recipe"].items() if k != "name")
            for kind, part in (("focused", s), ("random control", s.get("control"))):
                if part is None:
                    continue
                rows_.append([name, kind, recipe if kind == "focused" else "same size and label mix, random",
                              part["n"], _mix(part["regions"]), _mix(part["labels"]), part["path"]])
        doc.table(["recipe", "subset", "selection", "examples", "regions", "labels", "file"], rows_)

    # accuracy
    acc_path = out / "evaluation" / "accuracy.csv"
    if acc_path.is_file():
        acc = pd.read_csv(acc_path).set_index("model")
        doc.h(2, "Accuracy")
        by_split = {split: [r for r in REGIONS if f"{split}_{r}_accuracy" in acc] for split in ("test", "validation")}

        def region_header(split: str) -> list[str]:
            return [f"{split}: {r} (n={int(acc[f'{split}_{r}_n'].iloc[0]) if f'{split}_{r}_n' in acc else '?'})"
                    for r in by_split[split]]

        header = ["model", "test accuracy", *region_header("test"), "validation accuracy",
                  *region_header("validation")]
        doc.table(header, [[name, pct(row["test_accuracy"]), *[pct(row[f"test_{r}_accuracy"]) for r in by_split["test"]],
                            pct(row["validation_accuracy"]),
                            *[pct(row[f"validation_{r}_accuracy"]) for r in by_split["validation"]]]
                           for name, row in acc.iterrows()])
        if by_split["validation"] or by_split["test"]:
            doc.p("Regions of validation and test examples come from the baseline's own predictions on them at "
                  "each epoch end, so the baseline's per-region accuracy is biased by construction (easy-to-learn "
                  "is where it was right): compare the other models with it region by region, and a focused "
                  "model with its random control.")
        ensembles = _read_json(out / "ensembles.json", {})
        ensembles = {n: ensembles[n] for n in [*acc.index, *ensembles] if n in ensembles}
        if ensembles:
            first = next(iter(ensembles.values()))
            how = "weighted mean of logits" if first["combine"] == "logits" else "weighted mean of probabilities"
            doc.p(f"Ensembles: {how}, " + (
                "weights tuned on the validation set (so their validation accuracy is optimistic; compare them "
                "on test):" if first.get("tuned") else "equal weights:"))
            doc.table(["ensemble", "members", "weights"],
                      [[n, " + ".join(e["members"]), " / ".join(f"{w:.2f}" for w in e["weights"])]
                       for n, e in ensembles.items()])

    # time per stage
    doc.h(2, "Time per stage")
    time_rows, total_s = [], 0.0
    for name, rec in stages.items():
        if name == "report":
            continue
        total_s += float(rec.get("seconds", 0.0))
        finished = _dt.datetime.fromtimestamp(rec.get("finished_at", 0)).strftime("%Y-%m-%d %H:%M:%S")
        time_rows.append([name, _seconds(float(rec.get("seconds", 0.0))), finished])
    focus_models = stages.get("focus", {}).get("summary", {}).get("models", {})
    time_rows.append(["total (without the report)", _seconds(total_s), ""])
    doc.table(["stage", "time", "finished"], time_rows)
    if focus_models:
        focus_models = {n: focus_models[n] for n in [*(f"{k}/{r}" for r in order for k in ("focused", "control")),
                                                      *focus_models] if n in focus_models}
        doc.table(["model", "training examples", "time (training and prediction)"],
                  [[n, m["n"], _seconds(m["seconds"])] for n, m in focus_models.items()])

    # config and versions
    doc.h(2, "Configuration")
    doc.code(json.dumps(config, indent=2, sort_keys=True, default=str))
    doc.h(2, "Package versions")
    doc.table(["package", "version"], [[k, v] for k, v in package_versions().items()])

    md_path = write_text_atomic(out / "report.md", doc.markdown())
    html_path = write_text_atomic(out / "report.html", doc.html(title))
    return html_path, md_path


def _mix(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items() if v)


def _fmt_float(value: float) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.3f}"


__all__ = ["write_report", "noise_summary", "pct"]
