"""The redactor on hostile text: a log line can carry what a producer sent (a dead letter's detail, a
library's message with a record in it). Its secret-looking key=value rule once started at every word
boundary inside a run of letters, digits and dashes and scanned to the run's end from each one: time
quadratic in the run's length, 14 s for one 24,000-character line, on the event loop that moves money.
It now starts once per run. What it redacts is the same, checked here against the old rule."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.redaction_cost import OLD_KEY_VALUE  # the rule as it was: the reference
from worker.observability import logs
from worker.observability.logs import REDACTED, Redactor, masked_value

_PIECES = st.sampled_from(
    [
        "a",
        "1",
        "-",
        "_",
        "x",
        "api",
        "key",
        "api_key",
        "API-KEY",
        "token",
        "Token",
        "password",
        "secret",
        "credentials",
        "=",
        ":",
        " ",
        '"',
        "'",
        ",",
        ";",
        "&",
        ")",
        "]",
        "é",
        "\n",
    ]
)


@settings(max_examples=2000, deadline=None)
@given(st.lists(_PIECES, max_size=40).map("".join))
def test_the_key_value_rule_redacts_exactly_what_the_old_rule_did(text: str) -> None:
    assert logs._KEY_VALUE.sub(masked_value, text) == OLD_KEY_VALUE.sub(masked_value, text)


def test_a_hostile_line_of_96_kb_is_redacted_and_its_secrets_still_go() -> None:
    # Two 48,000-character runs: the old rule took about two minutes on this line (bench.redaction_cost).
    hostile = "a1-" * 16_000
    line = f"{hostile} x-api-key: k3y-v4lue-123, token=abc123 {hostile}"
    out = Redactor()(line)
    assert "k3y-v4lue-123" not in out
    assert "abc123" not in out
    assert out.count(REDACTED) == 4, "two opaque runs and the two values"
    assert "x-api-key: [REDACTED]," in out
    assert "token=[REDACTED]" in out
