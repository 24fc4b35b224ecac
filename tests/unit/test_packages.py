"""Two packages, one repository, floors that import only downwards (docs/design.md, "Module map"):
``worker`` (the product) imports neither the development package nor the benchmarks nor the tests;
``ecash_dev`` (devtools/) may import ``worker`` but not the benchmarks or the tests."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLOORS = {
    "worker": (ROOT / "worker", ("ecash_dev", "bench", "tests")),
    "ecash_dev": (ROOT / "devtools" / "ecash_dev", ("bench", "tests")),
}


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it (a function-level import counts)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_a_package_imports_nothing_from_the_floors_above_it(package: str) -> None:
    directory, above = FLOORS[package]
    files = sorted(directory.rglob("*.py"))
    assert len(files) > 10  # the scan found the package
    wrong = {
        str(path.relative_to(ROOT)): sorted(m for m in imported_modules(path) if m.split(".")[0] in above)
        for path in files
    }
    assert {path: modules for path, modules in wrong.items() if modules} == {}


# What moved to ecash_dev (docs/design.md): none of these names may come back into worker/.
MOVED = {"sandbox", "devkafka", "stack", "chaos", "chaos_plan", "chaos_report", "agreement", "demo"}
MOVED |= {"demo_plan", "hostile", "hostile_plan"}


def test_the_product_package_holds_no_development_tool() -> None:
    names = {path.stem for path in (ROOT / "worker").rglob("*.py")}
    names |= {path.name for path in (ROOT / "worker").rglob("*") if path.is_dir()}
    assert names & MOVED == set()


# Where the moved modules used to live, as code and docs name a module: an import, ``python -m``, a file
# path, a name in backquotes. A merge from a branch older than the move brings these back.
_OLD = (
    "(?:devkafka|sandbox|stack|chaos|chaos_plan|chaos_report|agreement|demo|demo_plan|hostile|hostile_plan)"
)
OLD_HOME = re.compile(
    rf"(?:(?:from|import|-m)\s+worker\.{_OLD}\b)|(?:worker/{_OLD}\.py)"
    rf"|(?:worker/(?:devkafka|sandbox|stack)/\w+\.py)|(?:`worker\.{_OLD}\b)"
)
SCANNED = ("worker", "devtools", "tests", "bench", "docs", "deploy", "examples", "scripts")


def test_nothing_names_the_old_home_of_a_development_tool() -> None:
    files = [ROOT / "README.md", ROOT / "Makefile"]
    for top in SCANNED:
        files += [
            p for p in (ROOT / top).rglob("*") if p.suffix in {".py", ".md", ".sh", ".xml", ".yml", ".yaml"}
        ]
    stale = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if OLD_HOME.search(line)
    ]
    assert stale == [], "moved to ecash_dev (docs/design.md): " + "\n".join(stale)


# The ground floor of worker/ (docs/design.md, "Module map"): what every other layer may import. Its
# modules import, from worker, only each other: events sit here so that no arrow runs back up.
GROUND = {"worker.clock", "worker.contracts", "worker.amount_rules", "worker.events"}
GROUND_PACKAGES = ("worker.core",)


def _on_the_ground(module: str) -> bool:
    return module in GROUND or module.startswith(tuple(f"{p}." for p in GROUND_PACKAGES))


def test_the_ground_floor_imports_only_the_ground_floor() -> None:
    files = [ROOT / "worker" / "events.py", *sorted((ROOT / "worker" / "core").rglob("*.py"))]
    wrong = {
        str(path.relative_to(ROOT)): sorted(
            m for m in imported_modules(path) if m.split(".")[0] == "worker" and not _on_the_ground(m)
        )
        for path in files
    }
    assert {path: modules for path, modules in wrong.items() if modules} == {}


def test_ecash_does_not_import_observability() -> None:
    """``observability.metrics`` reads ``ecash`` (operations, codes): the arrow may not run back."""
    files = sorted((ROOT / "worker" / "ecash").rglob("*.py"))
    wrong = {
        str(path.relative_to(ROOT)): sorted(
            m for m in imported_modules(path) if m.startswith("worker.observability")
        )
        for path in files
    }
    assert {path: modules for path, modules in wrong.items() if modules} == {}
