"""Where ``ecash-worker kafka start`` records the JVM broker it started, so ``status``, ``stop`` and
``restart`` find it without ``--data-dir``.

One JSON file a port: ``$ECASH_DEVKAFKA_STATE_DIR`` (development tooling only), else
``$XDG_RUNTIME_DIR/ecash-worker``, else ``<temp dir>/ecash-worker-<uid>``; named ``kafka-<port>.json``,
holding the pid, the ports, the data dir and the cache dir. A record whose pid is no longer a broker started
from that data dir is stale: the pid check (``LocalKafka.pid``) ignores it, and ``stop`` deletes it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

STATE_DIR_ENV = "ECASH_DEVKAFKA_STATE_DIR"


@dataclass(frozen=True)
class StartedBroker:
    pid: int
    port: int
    controller_port: int
    data_dir: Path
    cache_dir: Path


def state_dir(environ: Mapping[str, str]) -> Path:
    if environ.get(STATE_DIR_ENV):
        return Path(environ[STATE_DIR_ENV]).expanduser()
    if environ.get("XDG_RUNTIME_DIR"):
        return Path(environ["XDG_RUNTIME_DIR"]) / "ecash-worker"
    uid = os.getuid() if hasattr(os, "getuid") else os.getpid()
    return Path(tempfile.gettempdir()) / f"ecash-worker-{uid}"


def state_file(environ: Mapping[str, str], port: int) -> Path:
    return state_dir(environ) / f"kafka-{port}.json"


def record_started(environ: Mapping[str, str], started: StartedBroker) -> Path:
    """Write the record atomically (a reader never sees half of it); returns its path."""
    path = state_file(environ, started.port)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    body = {
        "pid": started.pid,
        "port": started.port,
        "controller_port": started.controller_port,
        "data_dir": str(started.data_dir),
        "cache_dir": str(started.cache_dir),
    }
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


def read_started(environ: Mapping[str, str], port: int) -> StartedBroker | None:
    """The record for ``port``, or None (none, unreadable, or not for this port)."""
    try:
        body = json.loads(state_file(environ, port).read_text(encoding="utf-8"))
        started = StartedBroker(
            pid=int(body["pid"]),
            port=int(body["port"]),
            controller_port=int(body["controller_port"]),
            data_dir=Path(body["data_dir"]),
            cache_dir=Path(body["cache_dir"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return started if started.port == port else None


def forget_started(environ: Mapping[str, str], port: int) -> None:
    state_file(environ, port).unlink(missing_ok=True)
