"""Inside ``worker/``, data and imports flow one way (docs/design.md, "Module map"): each part may import
only the parts listed for it below, checked on every import statement by AST (a function-level import
counts). A new module or package must be placed here before it can be imported anywhere."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "worker"

# The ground floor: plain values and definitions every part may use. Above it the core (pure decisions)
# and the events (what happened, with the core's vocabularies): every other part may use both.
GROUND = {"worker", "clock", "contracts", "amount_rules"}
# The spans (worker/tracing.py: OpenTelemetry, nothing of ours) are shared the same way: each part that
# does something a command's trace shows calls it where it does it.
SHARED = GROUND | {"core", "events", "tracing"}
# part -> the parts it may import, besides itself and the ground floor
MAY_IMPORT: dict[str, set[str]] = {
    "worker": set(),
    "clock": set(),
    "amount_rules": set(),
    "contracts": set(),
    "events": {"core"},
    "tracing": set(),
    "gc_policy": set(),  # the process's cycle collector: thresholds, and what start-up built frozen
    "malloc_policy": set(),  # glibc's allocator: large buffers go back to the system when freed
    "settings": set(),
    "schema_compat": set(),
    "commandline": set(),  # click, shared by the commands: help, defaults, exclusive options
    "core": set(),  # pure decisions: plain values in, values out; not even the settings
    "policies": {"core", "settings"},  # settings -> the core's policies, the one place
    "ecash": {"core", "settings"},  # the API client
    "kafka": {"settings"},  # the one place Kafka clients are built
    "preflight": {"ecash", "settings"},
    "observability": {
        "commandline",
        "ecash",
        "preflight",
        "settings",
    },  # listens to events; /metrics, /healthz
    "pipeline": {"core", "ecash", "kafka", "observability", "policies", "settings"},
    "client": {"kafka", "settings"},
    "ops": {"commandline", "core", "ecash", "kafka", "pipeline", "client", "settings"},
    "schema_export": {"commandline", "schema_compat"},
    "service": {
        "core",
        "ecash",
        "gc_policy",
        "kafka",
        "malloc_policy",
        "observability",
        "pipeline",
        "policies",
        "settings",
    },
    "cli_run": {"commandline", "preflight", "service", "settings"},
    "cli": {"commandline", "settings"},  # loads each command's module by name, only when that command runs
}


def part_of(module: str) -> str | None:
    """``worker.pipeline.processor`` -> ``pipeline``; ``worker.clock`` -> ``clock``; not ours -> None."""
    names = module.split(".")
    if names[0] != "worker":
        return None
    return "worker" if len(names) == 1 else names[1]


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if node.module == "worker":  # `from worker import x`: a module of ours, or a name in __init__
                found.update(f"worker.{a.name}" for a in node.names if _is_module(WORKER, a.name))
    return found


def _is_module(package: Path, name: str) -> bool:
    return (package / name).is_dir() or (package / f"{name}.py").exists()


def own_part(path: Path) -> str:
    relative = path.relative_to(WORKER)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem.replace("__init__", "worker")


def test_every_part_of_the_product_is_placed() -> None:
    parts = {own_part(path) for path in WORKER.rglob("*.py")}
    assert parts - set(MAY_IMPORT) == set(), "place the new part in MAY_IMPORT (and docs/design.md)"


@pytest.mark.parametrize("part", sorted(MAY_IMPORT))
def test_a_part_imports_only_what_it_may(part: str) -> None:
    floor = GROUND if part in GROUND | {"core"} else GROUND | {"core"} if part == "events" else SHARED
    allowed = MAY_IMPORT[part] | floor | {part}
    wrong: dict[str, list[str]] = {}
    for path in sorted(WORKER.rglob("*.py")):
        if own_part(path) != part:
            continue
        bad = sorted(m for m in imports(path) if (p := part_of(m)) is not None and p not in allowed)
        if bad:
            wrong[str(path.relative_to(ROOT))] = bad
    assert wrong == {}


def test_the_rules_have_no_cycle() -> None:
    """Each part's allowed imports reach only parts below it: the floors are a directed acyclic graph."""
    seen: dict[str, int] = {}

    def depth(part: str, path: tuple[str, ...] = ()) -> int:
        assert part not in path, f"a cycle: {' -> '.join((*path, part))}"
        if part not in seen:
            below = MAY_IMPORT.get(part, set()) - {part}
            seen[part] = 1 + max((depth(p, (*path, part)) for p in below), default=0)
        return seen[part]

    for part in MAY_IMPORT:
        depth(part)
