"""The house issue's figures for a checkout: lines of the product package (without the development
tooling, wherever it lives), the longest functions and the highest complexity (ruff's mccabe, with every
``noqa`` ignored so that an exempted function still counts).

    python -m bench.house            # this checkout
    python -m bench.house /tmp/old   # another one (e.g. git worktree add --detach /tmp/old 27d9e06)
"""

from __future__ import annotations

import argparse
import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

# What used to live in worker/ before the development package existed (issue 15).
DEV_DIRS = {"sandbox", "devkafka", "stack"}
DEV_FILES = {
    "chaos",
    "chaos_plan",
    "chaos_report",
    "agreement",
    "demo",
    "demo_plan",
    "hostile",
    "hostile_plan",
}


def product_files(root: Path) -> list[Path]:
    package = root / "worker"
    return sorted(
        path
        for path in package.rglob("*.py")
        if not set(path.relative_to(package).parts[:-1]) & DEV_DIRS
        and not (path.parent == package and path.stem in DEV_FILES)
    )


def longest_functions(files: list[Path], root: Path, top: int) -> list[tuple[int, str]]:
    found = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno is not None:
                lines = node.end_lineno - node.lineno + 1
                found.append((lines, f"{path.relative_to(root)}:{node.name}"))
    return sorted(found, reverse=True)[:top]


def most_complex(files: list[Path], root: Path, top: int) -> list[tuple[int, str]]:
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    argv = [ruff, "check", "--isolated", "--ignore-noqa", "--select", "C901"]
    argv += ["--config", "lint.mccabe.max-complexity=0", "--output-format", "json", *map(str, files)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603 - our own tool, fixed argv
    found = []
    for item in json.loads(done.stdout):
        score = int(item["message"].split("(")[1].split(" ")[0])
        name = item["message"].split("`")[1]
        found.append((score, f"{Path(item['filename']).relative_to(root.resolve())}:{name}"))
    return sorted(found, reverse=True)[:top]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("root", nargs="?", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--top", type=int, default=3, help="how many functions to list (default 3)")
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()
    every = sorted((root / "worker").rglob("*.py"))
    files = product_files(root)
    lines = sum(len(path.read_text(encoding="utf-8").splitlines()) for path in files)
    total = sum(len(path.read_text(encoding="utf-8").splitlines()) for path in every)
    print(f"worker/: {total} lines in {len(every)} files; product only: {lines} lines in {len(files)} files")
    for length, where in longest_functions(files, root, args.top):
        print(f"  longest: {length:3d} lines  {where}")
    for score, where in most_complex(files, root, args.top):
        print(f"  complexity: {score:3d}  {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
