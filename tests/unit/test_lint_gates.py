"""The lint gates that keep the house in order (docs/design.md, "Module map"): ruff enforces complexity
(C901, at most 10) and no blind ``except Exception`` (BLE001); this test makes every exception to either
rule, and to any other, say why, so that ``# noqa`` is a decision someone wrote down, never a mute."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKED = ("worker", "devtools/ecash_dev", "bench")
# the pragma, its rule codes, then a dash or a parenthesis and the reason
NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*))?(?P<rest>.*)$")


def noqa_lines() -> list[tuple[str, str]]:
    found = []
    for top in CHECKED:
        for path in sorted((ROOT / top).rglob("*.py")):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if "# noqa" in line:
                    found.append((f"{path.relative_to(ROOT)}:{number}", line.strip()))
    return found


def unexplained(line: str) -> str | None:
    match = NOQA.search(line)
    if match is None:
        return None
    if match.group("codes") is None:
        return "a bare noqa silences every rule: name the rule"
    rest = match.group("rest").strip()
    reason = rest[1:].strip() if rest[:1] in "-(" else ""
    return None if len(reason) >= 10 else "no reason after the rule"


def test_every_noqa_names_its_rule_and_says_why() -> None:
    lines = noqa_lines()
    assert len(lines) > 10  # the scan found them
    problems = {where: why for where, line in lines if (why := unexplained(line)) is not None}
    assert problems == {}


def test_the_gate_itself_tells_a_reason_from_none() -> None:
    assert unexplained("x = 1  # noqa: S105 - a fault name, not a secret") is None
    assert unexplained("x = 1  # noqa: S105 (a response code, not a secret)") is None
    assert unexplained("x = 1  # noqa: S105") == "no reason after the rule"
    assert unexplained("x = 1  # noqa") == "a bare noqa silences every rule: name the rule"


def test_the_complexity_and_blind_except_rules_are_on() -> None:
    config = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    select = re.search(r"^select = \[(.*)\]$", config, re.M)
    assert select is not None
    assert {'"C90"', '"BLE"'} <= {code.strip() for code in select.group(1).split(",")}
    assert re.search(r"^max-complexity = 10$", config, re.M)
