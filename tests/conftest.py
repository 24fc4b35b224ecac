"""Test-session plumbing for every test. The real Kafka broker's fixtures (tests.kafka_fixtures, which
start it with ecash_dev.kafka) are loaded only where tests need a broker: tests/integration/conftest.py,
tests/perf/conftest.py. The unit tests load neither.

``ecash-worker run`` has no default API identity (username, key, credentials): every test process sees
the sandbox's, as the demo passes them. A test about a missing identity removes them itself
(``monkeypatch.delenv``); child processes get their environment explicitly (``ecash_dev.stack``).
"""

import logging
from collections.abc import Iterator

import pytest

from worker.settings import ENV_PREFIX, SANDBOX_API_IDENTITY


@pytest.fixture(autouse=True)
def sandbox_api_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SANDBOX_API_IDENTITY.items():
        monkeypatch.setenv(ENV_PREFIX + name.upper(), value)
    return


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    """Put the root logger's handlers and level back: the worker's logging setup installs its handler
    there, writing to the stream of the test that called it (``pytest.mark.usefixtures``)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
