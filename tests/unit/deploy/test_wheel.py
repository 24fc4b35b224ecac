"""The production wheel (what deploy/Dockerfile's production target installs: ``pip install .``) holds the
product and nothing of the development package: no sandbox, local Kafka, process stack, chaos, demo or
hostile run.

It is built from a copy of the repository with this venv's own build backend (the ``[build-system]``
requirements come with the dev extra), without build isolation: no network.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DEVELOPMENT_CODE = ("ecash_dev", "sandbox", "devkafka", "stack", "chaos", "demo", "hostile", "agreement")
NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", "*.egg-info", "build", "dist", "__pycache__", ".*_cache", ".hypothesis", "bench-results"
)


@dataclass(frozen=True)
class Wheel:
    names: list[str]  # every file in the archive
    entry_points: str  # its *.dist-info/entry_points.txt


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Wheel:
    source = tmp_path_factory.mktemp("checkout") / "ecash-worker"
    shutil.copytree(ROOT, source, ignore=NOT_COPIED)
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(source),
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [built] = out.glob("ecash_worker-*.whl")
    with zipfile.ZipFile(built) as archive:
        names = archive.namelist()
        [entry_points] = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
        return Wheel(names, archive.read(entry_points).decode("utf-8"))


def test_the_production_wheel_holds_the_worker_package(wheel: Wheel) -> None:
    tops = {name.split("/")[0] for name in wheel.names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"worker"}
    for module in ("worker/cli.py", "worker/service.py", "worker/pipeline/processor.py"):
        assert module in wheel.names


def test_the_production_wheel_holds_no_development_code(wheel: Wheel) -> None:
    paths = [name for name in wheel.names if not name.split("/")[0].endswith(".dist-info")]
    parts = {part.removesuffix(".py") for name in paths for part in name.split("/")}
    assert parts & set(DEVELOPMENT_CODE) == set()


def test_the_production_wheel_declares_no_development_command(wheel: Wheel) -> None:
    """Its one console script is ``ecash-worker``; the development commands come from ecash-dev's entry
    point (``ecash_worker.commands``), which this wheel does not declare."""
    assert "ecash-worker = worker.cli:main" in wheel.entry_points
    assert "ecash_worker.commands" not in wheel.entry_points
    assert "ecash_dev" not in wheel.entry_points
