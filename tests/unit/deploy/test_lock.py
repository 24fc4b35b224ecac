"""The locks (requirements/*.txt) match pyproject.toml, and make, CI and the image install from them.

Offline: the lock files are read as text and every declared requirement is evaluated with ``packaging``.
A declared dependency must be locked at a version its specifier allows; every locked package must be
declared or be needed (``# via``) by one that is, so a dependency removed from pyproject.toml cannot
linger in a lock. ``make lock`` fixes what these tests find (docs/deploy.md, "Reproducible builds").
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[3]
REQUIREMENTS = ROOT / "requirements"
LOCAL = {"ecash-worker", "ecash-dev"}  # the two distributions of this repository: never locked


@dataclass
class Pin:
    name: str
    version: Version
    marker: str | None
    hashes: list[str] = field(default_factory=list)
    via: set[str] = field(default_factory=set)


def parse_lock(text: str) -> dict[str, Pin]:
    """``name==version [; marker] \\``, its ``--hash=`` lines and its ``# via`` lines (uv's split style)."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    for raw in text.splitlines():
        line = raw.strip().rstrip("\\").strip()
        if not line or (not raw[0].isspace() and line.startswith("#")):
            continue
        if not raw[0].isspace():
            requirement, _, marker = line.partition(";")
            name, sep, version = requirement.strip().partition("==")
            assert sep, f"not pinned with ==: {raw!r}"
            current = Pin(str(canonicalize_name(name)), Version(version.strip()), marker.strip() or None)
            assert current.name not in pins, f"{current.name} locked twice"
            pins[current.name] = current
            continue
        assert current is not None, f"an indented line before any package: {raw!r}"
        if line.startswith("--hash="):
            current.hashes.append(line.removeprefix("--hash="))
        elif line.startswith("# via"):
            if rest := line.removeprefix("# via").strip():
                current.via.add(rest)
        elif line.startswith("#"):
            current.via.add(line.lstrip("#").strip())
    return pins


def _via_name(via: str) -> str:
    return via if via.startswith("-") else str(canonicalize_name(via.split(" (")[0]))


def lock_problems(pins: dict[str, Pin], declared: list[str]) -> list[str]:
    """Everything on which ``pins`` (a lock) and ``declared`` (requirement strings) disagree."""
    problems = []
    wanted = {str(canonicalize_name(Requirement(text).name)): Requirement(text) for text in declared}
    wanted = {name: req for name, req in wanted.items() if name not in LOCAL}
    for name, requirement in sorted(wanted.items()):
        pin = pins.get(name)
        if pin is None:
            problems.append(f"{requirement} is declared but not locked")
        elif not requirement.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{requirement} is declared but {name}=={pin.version} is locked")
    for name, pin in sorted(pins.items()):
        if not re.fullmatch(r"(sha256:[0-9a-f]{64})+", "".join(pin.hashes)):
            problems.append(f"{name}: no sha256 hash (or a malformed one)")
        if name in LOCAL:
            problems.append(f"{name} is this repository's own package: it must not be locked")
        roots = {_via_name(v) for v in pin.via} & (LOCAL | {v for v in pin.via if v.startswith("-r ")})
        if roots and name not in wanted:
            problems.append(f"{name} is locked as a direct dependency but no longer declared: stale")
    # Every pin must be needed: declared, or (transitively) required by a declared one.
    needed = set(wanted) & set(pins)
    grew = True
    while grew:
        more = {
            name
            for name, pin in pins.items()
            if name not in needed and {_via_name(v) for v in pin.via} & needed
        }
        needed |= more
        grew = bool(more)
    problems += [
        f"{name} is locked but nothing declared needs it: stale" for name in sorted(set(pins) - needed)
    ]
    return problems


def pyproject(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        data: dict[str, Any] = tomllib.load(f)
    return data


PRODUCT = pyproject(ROOT / "pyproject.toml")
DEVTOOLS = pyproject(ROOT / "devtools" / "pyproject.toml")


def extras(lock: str) -> list[str]:
    """The product's extras a lock's input installs: ``-e .[dev,otel]`` in ``requirements/<lock>.in``."""
    lines = (REQUIREMENTS / f"{lock}.in").read_text(encoding="utf-8").splitlines()
    found = [m[1] for line in lines if (m := re.fullmatch(r"-e \.(?:\[([a-z,]+)\])?", line.strip()))]
    assert len(found) == 1, f"requirements/{lock}.in: one `-e .` line, got {found}"
    return found[0].split(",") if found[0] else []


def declared(lock: str) -> list[str]:
    runtime: list[str] = PRODUCT["project"]["dependencies"]
    optional: dict[str, list[str]] = PRODUCT["project"]["optional-dependencies"]
    if lock in ("production", "development"):
        wanted = runtime + [text for extra in extras(lock) for text in optional[extra]]
        devtools: list[str] = DEVTOOLS["project"]["dependencies"]
        return wanted + devtools if lock == "development" else wanted
    assert lock == "build"
    build: list[str] = PRODUCT["build-system"]["requires"]
    return build


def lock(name: str) -> dict[str, Pin]:
    return parse_lock((REQUIREMENTS / f"{name}.txt").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", ["production", "development", "build"])
def test_the_lock_matches_pyproject(name: str) -> None:
    assert lock_problems(lock(name), declared(name)) == [], "run `make lock`"


def test_the_image_and_the_tests_have_the_otlp_exporter() -> None:
    """ECASH_OTEL_EXPORTER=otlp works in the shipped image without a rebuild, and the tests run it."""
    assert extras("production") == ["otel"]
    assert sorted(extras("development")) == ["dev", "otel"]
    for name in ("production", "development"):
        assert "opentelemetry-exporter-otlp-proto-http" in lock(name), name


def test_the_production_lock_holds_the_runtime_only_at_the_versions_the_tests_run() -> None:
    production, development = lock("production"), lock("development")
    for tool in ("pytest", "mypy", "ruff", "uv", "hypothesis", "setuptools"):
        assert tool not in production
    assert {name: pin.version for name, pin in production.items()} == {
        name: development[name].version for name in production
    }
    for name, pin in lock("build").items():
        assert pin.version == development[name].version, name


def test_the_development_package_needs_nothing_the_production_lock_lacks() -> None:
    """The development image installs ecash-dev --no-deps on top of the production lock."""
    production = lock("production")
    for text in DEVTOOLS["project"]["dependencies"]:
        requirement = Requirement(text)
        if requirement.name in LOCAL:
            continue
        pin = production.get(canonicalize_name(requirement.name))
        assert pin is not None, f"{requirement}: not in the production lock"
        assert requirement.specifier.contains(pin.version, prereleases=True), f"{requirement}: {pin.version}"


def test_both_packages_build_with_the_locked_build_requirements() -> None:
    assert sorted(DEVTOOLS["build-system"]["requires"]) == sorted(PRODUCT["build-system"]["requires"])
    lines = (REQUIREMENTS / "build.in").read_text(encoding="utf-8").splitlines()
    build_in = [line for line in lines if line.strip() and not line.startswith("#")]
    assert sorted(build_in) == sorted(PRODUCT["build-system"]["requires"])


# --- the check itself catches what it is for ------------------------------------------------------------

LOCK = """\
# header
alpha==1.2.0 \\
    --hash=sha256:{h}
    # via ecash-worker
beta==2.0 ; sys_platform == 'win32' \\
    --hash=sha256:{h} \\
    --hash=sha256:{h}
    # via
    #   alpha
    #   ecash-dev
gamma==0.1 \\
    --hash=sha256:{h}
    # via beta
""".replace("{h}", "0" * 64)


def test_a_lock_that_matches_passes_and_markers_and_split_annotations_are_read() -> None:
    pins = parse_lock(LOCK)
    assert pins["beta"].marker == "sys_platform == 'win32'"
    assert pins["beta"].via == {"alpha", "ecash-dev"}
    assert len(pins["beta"].hashes) == 2
    assert lock_problems(pins, ["alpha>=1,<2", "beta", "ecash-worker"]) == []


def test_a_specifier_the_locked_version_breaks_is_found() -> None:
    assert lock_problems(parse_lock(LOCK), ["alpha>=1.3", "beta"]) == [
        "alpha>=1.3 is declared but alpha==1.2.0 is locked"
    ]


def test_a_declared_dependency_missing_from_the_lock_is_found() -> None:
    assert lock_problems(parse_lock(LOCK), ["alpha", "beta", "delta>=1"]) == [
        "delta>=1 is declared but not locked"
    ]


def test_a_dependency_removed_from_pyproject_is_found_stale_with_what_only_it_needed() -> None:
    assert lock_problems(parse_lock(LOCK), ["alpha"]) == [
        "beta is locked as a direct dependency but no longer declared: stale",
    ]
    problems = lock_problems(parse_lock(LOCK), ["beta"])
    assert "alpha is locked as a direct dependency but no longer declared: stale" in problems
    assert "alpha is locked but nothing declared needs it: stale" in problems


def test_a_package_without_a_hash_is_found() -> None:
    unhashed = LOCK.replace("gamma==0.1 \\\n    --hash=sha256:" + "0" * 64 + "\n", "gamma==0.1\n")
    assert lock_problems(parse_lock(unhashed), ["alpha", "beta"]) == [
        "gamma: no sha256 hash (or a malformed one)"
    ]


# --- make, CI and the image install from the locks ------------------------------------------------------


def test_make_installs_the_development_lock_with_hashes_then_the_two_packages_without_resolving() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    installs = [line.strip() for line in makefile.splitlines() if "pip install" in line]
    assert installs == [
        "$(BIN)/pip install -q --disable-pip-version-check --require-hashes -r $(DEV_LOCK)",
        "$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . -e ./devtools",
        # `make lock` alone: uv's pin, hashed, from the same lock (a new dependency is not installable yet)
        "$(BIN)/pip install -q --disable-pip-version-check --no-deps --require-hashes \\",
    ]
    assert "awk '/^uv==/" in makefile
    assert "DEV_LOCK := requirements/development.txt" in makefile
    assert re.search(r"^\$\(BIN\)/\.installed: .*\$\(DEV_LOCK\)", makefile, re.MULTILINE)
    assert re.search(r"^lock: ", makefile, re.MULTILINE)
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")  # so CI installs the lock too


def test_the_image_installs_the_production_lock_with_hashes_and_builds_without_resolving() -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    installs = [m.group(0) for m in re.finditer(r"pip (?:install|wheel)[^&;\n]*", text)]
    assert installs
    for command in installs:
        assert "--require-hashes -r requirements/" in command or "--no-deps" in command, command
    assert "--require-hashes -r requirements/production.txt" in text
    assert "--require-hashes -r requirements/build.txt" in text
    assert "requirements/development.txt" not in text  # the image is built from the production lock
