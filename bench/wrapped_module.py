"""Run a module as ``python -m`` would, with a measuring hook installed first (the ``--profile`` wrappers,
``bench.processes.WRAPPERS``)."""

from __future__ import annotations

import runpy
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["run_wrapped"]


def run_wrapped(prog: str, install: Callable[[Path], None], argv: Sequence[str] | None) -> int:
    """``prog OUT -- -m MODULE [ARGS...]``: ``install(OUT)``, then MODULE as ``__main__`` with ARGS."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 4 or args[1] != "--" or args[2] != "-m":
        print(f"usage: python -m {prog} OUT -- -m MODULE [ARGS...]", file=sys.stderr)
        return 2
    out, module, rest = Path(args[0]), args[3], args[4:]
    install(out)
    sys.argv = [module, *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    return 0
