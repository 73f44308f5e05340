"""The import graph and the size rules of src/datacarto, checked on the source with ``ast``.

Every ``import`` counts, also those inside functions (the lazy ones are the ones a convention
misses). Rules (docs/architecture.md draws them):

* no import cycle between modules;
* the pure core (metrics, selection, evaluation, noise, ...) imports neither torch nor
  transformers nor the run folder (``datacarto.dynamics``, ``datacarto.record``);
* layers: no module imports a module of a higher layer;
* no shims: no module-level ``__getattr__`` but the root package's lazy exports, no module that
  only re-exports another's names, and every lazy export names the module that defines it;
* no file over 450 lines, no function over 80 lines; the page's own code (``maps/*.js``,
  ``maps/*.html``, inlined into one offline page) too.
* no task name as a string literal outside the task registry (``datacarto.tasks``).

There are no exceptions: every import counts.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "datacarto"
ROOT = "datacarto"

#: Layers, lowest first; a module belongs to the layer of its longest matching prefix.
LAYERS: dict[str, tuple[str, ...]] = {
    "core": ("errors", "_io", "_validation", "metrics", "metrics_fused", "selection", "evaluation", "noise",
             "learning_check", "units", "ensemble_weights", "trajectory", "label_errors", "significance"),
    # loading tables, labels, tokenizers, the task registry: below everything that trains or records
    "data": ("data", "models", "task_data", "tasks"),
    "run folder": ("dynamics",),  # store, cache, subsets, interop
    "maps": ("maps",),  # a run folder drawn: recording logs the maps to experiment trackers
    "recording": ("record",),
    "training": ("train", "testing"),
    "pipeline": ("pipeline", "audit", "audit_tasks", "demo_data"),
    "cli": ("cli", "commands"),
}
PURE = ("errors", "_io", "_validation", "metrics", "metrics_fused", "selection", "evaluation", "noise",
        "learning_check", "units", "ensemble_weights", "trajectory", "label_errors", "significance")
HEAVY = ("torch", "transformers")

MAX_FILE_LINES = 450
MAX_FUNCTION_LINES = 80
#: (module, function) allowed over the function limit, and why.
LONG_FUNCTIONS = {
    # one fused pass over a chunk of logits: splitting it would add passes over the work arrays
    ("datacarto.metrics_fused", "chunk_metrics"),
}
#: Files not (yet) held to the size rules, and why.
SIZE_EXEMPT: set[str] = set()  # every file is held to the size rules


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def _resolve(module: str, node: ast.ImportFrom) -> list[str]:
    """The datacarto modules a ``from ... import ...`` loads (a submodule when a name is one)."""
    if node.level:
        base = module.split(".") if _is_package(module) else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + (node.module.split(".") if node.module else []))
    else:
        target = node.module or ""
    if target != ROOT and not target.startswith(ROOT + "."):
        return [target]
    subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
    return subs or [target]


TREES = {m: ast.parse(p.read_text(encoding="utf-8")) for m, p in MODULES.items()}


def _imports(module: str) -> list[tuple[str, int]]:
    """(imported module, line) for every import in the file, at module level or inside a function."""
    found = []
    for node in ast.walk(TREES[module]):
        if isinstance(node, ast.Import):
            found.extend((a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.extend((t, node.lineno) for t in _resolve(module, node))
    return found


IMPORTS = {m: _imports(m) for m in MODULES}


def _internal(target: str) -> str | None:
    """``target`` as a datacarto module (the root package, which only exports lazily, is left out)."""
    if not target.startswith(ROOT + "."):
        return None
    while target not in MODULES and "." in target:
        target = target.rsplit(".", 1)[0]
    return target if target in MODULES and target != ROOT else None


def _graph() -> dict[str, set[str]]:
    graph = defaultdict(set)
    for module, found in IMPORTS.items():
        for target, _ in found:
            t = _internal(target)
            if t is not None and t != module:
                graph[module].add(t)
    return graph


def _layer(module: str) -> int:
    name = module.removeprefix(ROOT + ".")
    best, best_len = None, -1
    for index, prefixes in enumerate(LAYERS.values()):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    assert best is not None, f"{module} belongs to no layer: add it to LAYERS"
    return best


def test_every_module_is_parsed_and_has_a_layer():
    assert {"datacarto.metrics", "datacarto.pipeline.runner", "datacarto.pipeline.report"} <= set(MODULES)
    for module in MODULES:
        if module != ROOT:
            _layer(module)


def test_no_import_cycle():
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(MODULES):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("module", [f"{ROOT}.{m}" for m in PURE])
def test_the_core_imports_no_torch_and_no_run_folder(module):
    found = IMPORTS[module]
    bad = [(t, line) for t, line in found
           if t.split(".")[0] in HEAVY or _internal(t) is not None and _layer(_internal(t)) > _layer(module)]
    assert not bad, f"{module} imports {bad}"


def test_no_module_imports_a_higher_layer():
    names = list(LAYERS)
    bad = []
    for module, found in IMPORTS.items():
        if module == ROOT:
            continue
        for target, line in found:
            t = _internal(target)
            if t is not None and _layer(t) > _layer(module):
                bad.append(f"{module}:{line} ({names[_layer(module)]}) imports {t} ({names[_layer(t)]})")
    assert not bad, "\n".join(bad)


def test_no_module_getattr_but_the_root_packages_lazy_exports():
    """A module-level ``__getattr__`` is how an old import path hides an import (and a circle) from the rules."""
    bad = [m for m, tree in TREES.items() if m != ROOT
           and any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__" for n in tree.body)]
    assert not bad, f"module-level __getattr__ in {bad}"


def _defined(tree: ast.Module) -> set[str]:
    """Names a module's own top-level statements define (not the ones it imports)."""
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names


def test_no_module_only_re_exports_another():
    """A module (not a package's ``__init__``) that defines nothing is an old import path: none is kept."""
    bad = []
    for module, tree in TREES.items():
        if _is_package(module):
            continue
        if tree.body and not (_defined(tree) - {"__all__"}):
            bad.append(module)
    assert not bad, f"modules that only re-export: {bad}"


def test_no_aliases_of_public_names():
    """``old_name = new_name`` at module level (a second name for a function or class) is not kept."""
    bad = []
    for module, tree in TREES.items():
        own = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        for node in tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name) and node.value.id in own:
                bad += [f"{module}:{node.lineno} {t.id} = {node.value.id}" for t in node.targets
                        if isinstance(t, ast.Name)]
    assert not bad, "\n".join(bad)


def test_lazy_exports_name_the_defining_module():
    """Each name ``import datacarto`` exports lazily comes from a module (or package) that has it."""
    exports = next(n.value for n in TREES[ROOT].body
                   if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "_EXPORTS")
    bad = []
    for key, value in zip(exports.keys, exports.values):
        name, module = key.value, value.value
        if module not in MODULES:
            bad.append(f"{name}: no module {module}")
            continue
        tree = TREES[module]
        imported = {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names}
        if name not in _defined(tree) and not (_is_package(module) and name in imported):
            bad.append(f"{name}: not defined in {module}")
    assert not bad, "\n".join(bad)


REPORT_MODULES = {"datacarto.pipeline.report", "datacarto.pipeline.report_state", "datacarto.pipeline.report_results",
                  "datacarto.pipeline.report_cleaning"}


def test_the_report_reads_a_layout_and_never_imports_the_orchestrator():
    """The report's modules import the layout, the document, the stage summaries and each other: no stage,
    runner or context; the summaries import no other part of the pipeline."""
    inside = set()
    for module in REPORT_MODULES:
        pipeline = {_internal(t) for t, _ in IMPORTS[module]} - {None}
        inside |= {t for t in pipeline if t.startswith("datacarto.pipeline")}
    assert inside - REPORT_MODULES == {"datacarto.pipeline.layout", "datacarto.pipeline.document",
                                       "datacarto.pipeline.summaries"}
    summaries = {_internal(t) for t, _ in IMPORTS["datacarto.pipeline.summaries"]} - {None}
    assert not {t for t in summaries if t.startswith("datacarto.pipeline")}


def test_the_audit_scoring_and_the_pipeline_config_stay_light():
    """Importing these must not import torch (checked on the module-level imports)."""
    for module in ("datacarto.audit", "datacarto.pipeline.config", "datacarto.maps"):
        tree = TREES[module]
        top = [a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names]
        top += [n.module or "" for n in tree.body if isinstance(n, ast.ImportFrom) and not n.level]
        assert not [t for t in top if t.split(".")[0] in HEAVY], module


def test_files_and_functions_are_small():
    too_long = []
    for module, path in MODULES.items():
        if module in SIZE_EXEMPT:
            continue
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_FILE_LINES:
            too_long.append(f"{path.relative_to(SRC.parent)}: {lines} lines")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES and (module, node.name) not in LONG_FUNCTIONS:
                    too_long.append(f"{path.relative_to(SRC.parent)}:{node.lineno} {node.name}: {length} lines")
    assert not too_long, "\n".join(too_long)


PAGE_FILES = sorted([*SRC.rglob("*.js"), *SRC.rglob("*.html")])
#: a function of the page's code: ``function name(...) {`` ending at a ``}`` of the same indentation
JS_FUNCTION = re.compile(r"^( *)function (\w+)\s*\(.*\{\s*(//.*)?$")


def js_functions(text: str) -> list[tuple[str, int, int]]:
    """(name, first line, length) of each named function of the page's code, by its indentation."""
    lines, out = text.splitlines(), []
    for k, line in enumerate(lines):
        m = JS_FUNCTION.match(line)
        if m is None:
            continue
        end = next((j for j in range(k + 1, len(lines)) if re.match(rf"^{m.group(1)}\}}", lines[j])), None)
        assert end is not None, f"line {k + 1}: function {m.group(2)} has no closing brace at its indentation"
        out.append((m.group(2), k + 1, end - k + 1))
    return out


def test_the_page_code_is_held_to_the_size_rules():
    """The page's JavaScript and HTML: no file over 450 lines, no function over 80 lines."""
    too_long = []
    for path in PAGE_FILES:
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_FILE_LINES:
            too_long.append(f"{path.relative_to(SRC.parent)}: {len(text.splitlines())} lines")
        too_long += [f"{path.relative_to(SRC.parent)}:{at} {name}: {n} lines"
                     for name, at, n in js_functions(text) if n > MAX_FUNCTION_LINES]
    assert not too_long, "\n".join(too_long)


def test_every_page_script_is_inlined_and_the_checker_sees_functions():
    from datacarto.maps.interactive import DECODER, SCRIPTS

    scripts = {p.name for p in PAGE_FILES if p.suffix == ".js"}
    assert scripts == {*SCRIPTS, DECODER}  # each file of the page's code is in the page, found by its name
    found = {name for p in PAGE_FILES for name, _, _ in js_functions(p.read_text(encoding="utf-8"))}
    assert {"buildTraces", "renderRows", "setDecision", "main"} <= found


def test_the_checker_sees_lazy_imports():
    """A lazy import inside a function is found (the point of reading the whole file)."""
    tree = ast.parse(MODULES["datacarto.pipeline.stages"].read_text(encoding="utf-8"))
    top = {n.module for n in tree.body if isinstance(n, ast.ImportFrom)}
    assert "report" not in top  # the stage imports the report only when it runs ...
    found = {t for t, _ in IMPORTS["datacarto.pipeline.stages"]}
    assert {"datacarto.pipeline.report", "datacarto.dynamics.cache"} <= found  # ... and the checker sees it


def test_the_architecture_page_is_drawn_from_the_code():
    """docs/architecture.md's file tree names every module, and no file that is not there."""
    import re

    page = (SRC.parents[1] / "docs" / "architecture.md").read_text(encoding="utf-8")
    tree = page.split("```\nsrc/datacarto/\n", 1)[1].split("```", 1)[0]
    named = set(re.findall(r"[\w/]*\w\.py\b", tree))
    files = {p.relative_to(SRC).as_posix() for p in SRC.rglob("*.py")}
    stale = sorted(n for n in named if not any(f == n or f.endswith("/" + n) for f in files))
    assert not stale, f"the page names files that do not exist: {stale}"
    listed = {f for f in files if f.startswith("commands/") or (f.endswith("__init__.py") and f != "__init__.py")}
    missing = sorted(f for f in files - listed if f not in named and f.rsplit("/", 1)[-1] not in named)
    assert not missing, f"the page leaves out: {missing}"


#: the one module that names the task types (its tests name them too)
TASK_REGISTRY = "datacarto.tasks"


def test_no_task_name_literal_outside_the_registry():
    """A task is one registry entry: every other module reads its properties, none branches on its name."""
    from datacarto.tasks import task_names

    names = set(task_names())
    bad = [f"{MODULES[m].relative_to(SRC.parent)}:{node.lineno} {node.value!r}"
           for m, tree in TREES.items() if m != TASK_REGISTRY
           for node in ast.walk(tree) if isinstance(node, ast.Constant) and node.value in names]
    assert not bad, "task names outside the registry:\n" + "\n".join(bad)


def test_the_literal_check_sees_a_task_name():
    """The check above finds a literal where one is (a branch on a name, as main had about 115 of)."""
    from datacarto.tasks import DEFAULT_TASK

    tree = ast.parse(f"if task.name == {DEFAULT_TASK!r}:\n    pass\n")
    assert [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)] == [DEFAULT_TASK]
