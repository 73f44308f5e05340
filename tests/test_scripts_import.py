"""Every ``from datacarto... import name`` in benchmarks/ and examples/ (child scripts held in strings
included) names something that exists: a moved function breaks these scripts only when someone runs
them, long after the change (benchmarks/store_scale.py imported get_metrics from its old home)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted([*(ROOT / "benchmarks").glob("*.py"), *(ROOT / "examples").rglob("*.py")])


def datacarto_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of each ``from datacarto... import name`` in the file and in its string constants."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    trees = [tree]
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "import" in node.value:
            try:
                trees.append(ast.parse(node.value))
            except SyntaxError:
                continue
    return [(node.module, alias.name) for t in trees for node in ast.walk(t)
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "datacarto"
            for alias in node.names]


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_scripts_import_names_that_exist(path):
    missing = []
    for module, name in datacarto_imports(path):
        found = importlib.import_module(module)
        if not hasattr(found, name) and importlib.util.find_spec(f"{module}.{name}") is None:
            missing.append(f"{module}.{name}")
    assert not missing, f"{path.name} imports what does not exist: {missing}"
