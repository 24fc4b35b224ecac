"""``reconcile`` streams the results topic: an in-memory fake topic is read record by record into the
spool, and the comparison sees every result of a trace number in scope (in the window or not) while
Python keeps only the window's trace numbers."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from worker.contracts import Outcome, Result
from worker.kafka import clients
from worker.ops import reconcile as module
from worker.ops.output import Console, Format
from worker.ops.reconcile import Kind, ResultSpool, WalletLine, Window, gather, reconcile
from worker.settings import SANDBOX_API_IDENTITY, Settings

from .test_reconcile import DAY, NOON, OTHER, RICH, line, result


@dataclass
class Record:
    value: bytes | None


class FakeTopic:
    """Stands for ``stream_topic``: hands each record to the handler as it goes, keeps none, and notes
    how much the handler's spool holds in Python while the read is under way."""

    def __init__(self, values: Sequence[bytes | None]) -> None:
        self.values = values
        self.held_while_reading: list[int] = []
        self.spool_files: list[Path] = []

    async def __call__(
        self, settings: Settings, topic: str, setting: str, handle: Callable[[Any], None], **_: Any
    ) -> int:
        for i, value in enumerate(self.values):
            handle(Record(value))
            if i % 500 == 0:
                self.held_while_reading.append(len(_spool_of(handle)._pending))
        self.spool_files = sorted(Path(_spool_dir(handle)).glob("*"))  # noqa: ASYNC240 (a test's temp dir)
        return len(self.values)


def _spool_of(handle: Callable[[Any], None]) -> ResultSpool:
    for cell in handle.__closure__ or ():
        if isinstance(cell.cell_contents, ResultSpool):
            return cell.cell_contents
    raise AssertionError("the handler does not write to a spool")


def _spool_dir(handle: Callable[[Any], None]) -> str:
    path: str
    (path,) = [
        row[2] for row in _spool_of(handle)._db.execute("PRAGMA database_list").fetchall() if row[1] == "main"
    ]
    return os.path.dirname(path)


def settings() -> Settings:
    return Settings(kafka_bootstrap_servers="127.0.0.1:1", **SANDBOX_API_IDENTITY)  # type: ignore[arg-type]


def encoded(results: list[Result]) -> list[bytes | None]:
    return [r.model_dump_json().encode() for r in results]


async def run_gather(
    monkeypatch: pytest.MonkeyPatch,
    values: Sequence[bytes | None],
    history: list[WalletLine],
    wanted: Sequence[str] | None = None,
) -> tuple[module.Report, FakeTopic, list[str]]:
    topic = FakeTopic(values)
    asked: list[str] = []

    async def fake_histories(
        settings: Settings, wallets: Sequence[str], *_: Any
    ) -> tuple[list[WalletLine], dict[str, str]]:
        asked.extend(wallets)
        return [h for h in history if h.msisdn in wallets], {}

    monkeypatch.setattr(module, "stream_topic", topic)
    monkeypatch.setattr(module, "read_histories", fake_histories)
    console = Console(Format.JSON, io.StringIO(), io.StringIO())
    report = await gather(settings(), DAY, wanted, None, 50, console)
    return report, topic, asked


async def test_a_large_topic_streams_through_the_spool_on_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    earlier = NOON - timedelta(days=5)
    old = [result(f"OLD{i:05d}", at=earlier) for i in range(5000)]
    today = [result(f"NEW{i:03d}") for i in range(50)]
    values = [*encoded(old[:2500]), b"not json", None, *encoded(today), *encoded(old[2500:])]
    history = [line(f"NEW{i:03d}") for i in range(50)]
    report, topic, asked = await run_gather(monkeypatch, values, history)
    # Never more than one batch of results in Python while reading; the rest was on disk, and is gone.
    assert max(topic.held_while_reading) < ResultSpool.BATCH
    assert [p.name for p in topic.spool_files] == ["results.sqlite"]
    assert not topic.spool_files[0].exists()
    assert report.agrees
    assert (report.results_read, report.unreadable_results, report.traces_checked) == (5050, 2, 50)
    assert asked == [RICH]  # the wallets of the window's results only


async def test_a_result_outside_the_window_still_answers_for_money_moved_inside_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The money moved on the day; the worker's success came two days later (Status Inquiry)."""
    late = result("LATE1", at=NOON + timedelta(days=2))
    values = encoded(
        [result("T1"), late, result("GONE", outcome=Outcome.DECLINED, at=NOON + timedelta(days=2))]
    )
    report, _, _ = await run_gather(monkeypatch, values, [line("T1"), line("LATE1"), line("GONE")])
    assert [(f.kind, f.trace_number) for f in report.findings] == [(Kind.MONEY_WITHOUT_SUCCESS, "GONE")]
    assert report.traces_checked == 3


async def test_only_the_wanted_wallets_results_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    values = encoded([result("A1"), result("B1", msisdn=OTHER)])
    report, _, asked = await run_gather(monkeypatch, values, [line("A1", msisdn=OTHER)], wanted=[OTHER])
    assert asked == [OTHER]
    assert report.results_read == 1
    # A1's result is another wallet's: not kept, so the money on OTHER's history has no result.
    assert {(f.kind, f.trace_number) for f in report.findings} == {
        (Kind.MONEY_WITHOUT_SUCCESS, "A1"),
        (Kind.SUCCESS_WITHOUT_MONEY, "B1"),
    }


def test_the_spool_groups_every_result_of_the_trace_numbers_asked_for_in_one_pass(tmp_path: Path) -> None:
    window = Window(DAY.first_day, DAY.last_day)
    with ResultSpool(window, directory=tmp_path) as spool:
        for i in range(2500):
            spool.add(result(f"T{i % 1000:04d}", at=NOON - timedelta(days=i // 1000)))
        spool.add(result("T0001", outcome=Outcome.DECLINED))
        assert spool.count == 2501
        assert len(spool.in_window) == 1000
        groups = dict(spool.grouped(["T0000", "T0001", "T0500", "ZZZ"]))
    assert [len(groups[t]) for t in ("T0000", "T0001", "T0500", "ZZZ")] == [3, 4, 2, 0]
    assert {r.outcome for r in groups["T0001"]} == {Outcome.SUCCEEDED, Outcome.DECLINED}


def test_a_list_and_a_spool_give_the_same_report() -> None:
    results = [result("C1"), result("C2", outcome=Outcome.UNRESOLVED), result("C3", amount="5")]
    history = [line("C1"), line("C3"), line("X9")]
    by_list = reconcile(results, history, DAY, checked_wallets=[RICH])
    by_spool = reconcile(ResultSpool.of(results, DAY), history, DAY, checked_wallets=[RICH])
    assert by_list == by_spool
    assert not by_list.agrees


async def test_the_operators_reader_reads_only_committed_records() -> None:
    consumer = clients.reader_consumer(settings(), {}, client_id="t")
    assert consumer._isolation_level == "read_committed"
    await consumer.stop()
