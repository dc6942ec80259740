"""ARCHITECTURE.md's table, enforced: who may import whom, and where Flask may appear."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package → the packages of this project it may import (itself always allowed).
ALLOWED = {
    "app.config": set(),
    "app.serving": set(),
    "app.observability": set(),
    "app.server": {"app.config", "app.observability"},
    "app.feedback": set(),
    "app.web": {"app.config", "app.serving", "app.observability", "app.feedback"},
    "app.offline": {"app.config", "app.serving"},
    "app": {"app.config", "app.web", "app.offline", "app.observability"},
    "model": {"app.serving"},
}
FLASK_ALLOWED = {"app.web", "app"}


def package_of(module: str) -> str | None:
    """The table's row for a dotted module name, or None if it is not the project's."""
    if module == "app" or module.startswith("app.batch"):
        return "app"
    for package in ALLOWED:
        if module == package or module.startswith(package + "."):
            return package
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


SOURCES = sorted([*ROOT.glob("app/**/*.py"), *ROOT.glob("model/**/*.py")])


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: str(path.relative_to(ROOT)))
def test_imports_follow_the_table(path):
    here = package_of(module_name(path))
    assert here is not None, f"{path} is in no row of ARCHITECTURE.md's table"
    wrong = set()
    for imported in imports(path):
        there = package_of(imported)
        if there is not None and there != here and there not in ALLOWED[here]:
            wrong.add(imported)
        if imported.split(".")[0] == "flask" and here not in FLASK_ALLOWED:
            wrong.add(imported)
    assert not wrong, f"{here} may not import {sorted(wrong)} (ARCHITECTURE.md)"


def test_pyspark_is_imported_by_the_spark_job_only():
    """The server and app.batch never load PySpark: it is not even in their environment."""
    spark_job = ROOT / "app" / "offline" / "spark.py"
    users = [
        path for path in SOURCES if any(name.split(".")[0] == "pyspark" for name in imports(path))
    ]
    assert users == [spark_job]
    top_level = ast.parse(spark_job.read_text()).body
    assert not [
        node
        for node in top_level
        if isinstance(node, ast.Import | ast.ImportFrom) and "pyspark" in ast.unparse(node)
    ], "import pyspark inside functions only"


def test_the_table_has_no_cycle():
    def reaches(start: str, target: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(
            nxt == target or (nxt not in seen and reaches(nxt, target, seen | {nxt}))
            for nxt in ALLOWED[start]
        )

    assert not [package for package in ALLOWED if reaches(package, package)]


def test_the_checker_sees_a_forbidden_import(tmp_path):
    source = tmp_path / "bad.py"
    source.write_text("def f():\n    from app.web.api import run_model\n")
    assert "app.web.api" in imports(source)
    assert package_of("app.web.api") not in ALLOWED["app.serving"]
