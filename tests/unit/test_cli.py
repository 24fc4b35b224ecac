"""``ecash-worker``: only the chosen subcommand's module is imported; the development tools come from the
development package's entry point, and without it they say so and exit 2; every option says what it does
and its default; shell completion is click's, and lazy too."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys

import click
import pytest

from worker import cli
from worker.settings import ENV_PREFIX, SANDBOX_API_IDENTITY

# What ``check`` never needs: Kafka's clients, the probe server, the API client, the development package
# and the other commands. (click is the command line itself.)
NOT_FOR_CHECK = (
    "aiokafka",
    "aiohttp",
    "httpx",  # the probe uses the standard library's client: httpx would load rich
    "rich",
    "starlette",
    "uvicorn",
    "prometheus_client",
    "tenacity",
    "cryptography",
    "ecash_dev",
    "worker.cli_run",
    "worker.service",
    "worker.pipeline",
    "worker.ecash",
    "worker.ops",
    "worker.observability.health",
    "worker.observability.metrics",
    "worker.schema_export",
)

LOADED = """
import json, sys
from worker.cli import main
code = main(sys.argv[1:])
print("\\nLOADED " + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def run_cli(*argv: str, env: dict[str, str] | None = None) -> tuple[str, set[str]]:
    """``ecash-worker <argv>`` in a fresh interpreter (exit 0): its stdout, and the modules in
    ``sys.modules`` after it."""
    environ = {**os.environ, **{ENV_PREFIX + k.upper(): v for k, v in SANDBOX_API_IDENTITY.items()}}
    done = subprocess.run(
        [sys.executable, "-c", LOADED, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**environ, **(env or {})},
    )
    out, _, loaded = done.stdout.rpartition("\nLOADED ")
    report = json.loads(loaded)
    assert report["code"] == 0, done.stdout + done.stderr
    return out, set(report["modules"])


def modules_loaded_by(*argv: str) -> set[str]:
    return run_cli(*argv)[1]


def offenders(loaded: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in loaded if any(m == p or m.startswith(p + ".") for p in prefixes))


def command_modules() -> tuple[str, ...]:
    return tuple(c.module for c in {**cli.COMMANDS, **cli.plugin_commands()}.values())


@pytest.mark.parametrize("argv", [("check", "--help"), ("check", "--config")])
def test_check_loads_only_what_it_needs(argv: tuple[str, ...]) -> None:
    loaded = modules_loaded_by(*argv)
    assert "worker.observability.check" in loaded  # the probe ran
    assert offenders(loaded, NOT_FOR_CHECK) == []


def test_the_top_level_help_lists_every_command_and_imports_none() -> None:
    loaded = modules_loaded_by("--help")
    assert offenders(loaded, command_modules()) == []
    assert offenders(loaded, ("aiokafka", "starlette", "uvicorn")) == []


def listed_commands(help_text: str) -> list[str]:
    """The command names under ``Commands:`` in a help text."""
    section = help_text.split("\nCommands:\n", 1)[1]
    return re.findall(r"^  (\S+)", section, flags=re.MULTILINE)


def test_the_top_level_help_names_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    listed = capsys.readouterr().out
    assert listed_commands(listed) == [*cli.COMMANDS, *cli.DEVELOPMENT_TOOLS]
    for command in cli.COMMANDS.values():
        assert command.help.split()[0] in listed


def test_the_development_package_declares_the_development_tools() -> None:
    found = cli.plugin_commands()
    assert set(found) == set(cli.DEVELOPMENT_TOOLS)
    assert all(command.module.startswith("ecash_dev.") for command in found.values())


def test_each_help_line_is_the_one_its_module_gives() -> None:
    """The table stands in for the modules in ``--help``: it must say what they say."""
    for name, command in {**cli.COMMANDS, **cli.plugin_commands()}.items():
        loaded = importlib.import_module(command.module).command
        assert (loaded.name, loaded.short_help) == (name, command.help)


@pytest.mark.parametrize("name", cli.DEVELOPMENT_TOOLS)
def test_without_the_development_package_its_commands_say_what_they_are(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "plugin_commands", dict)  # a production install: no entry point
    assert cli.main([name, "--help"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"ecash-worker {name}: a development tool")


def test_completing_a_missing_development_tool_offers_and_says_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "plugin_commands", dict)
    completing = click.Context(cli.cli, resilient_parsing=True)
    assert cli.cli.get_command(completing, "sandbox") is None
    assert capsys.readouterr().err == ""


def test_without_the_development_package_the_help_lists_the_product_only(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "plugin_commands", dict)
    assert cli.main(["--help"]) == 0
    assert listed_commands(capsys.readouterr().out) == list(cli.COMMANDS)


def test_a_broken_install_says_which_part_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(cli.COMMANDS, "check", cli.Command("worker.no_such_module", "gone"))
    assert cli.main(["check"]) == 1
    assert "cannot load the 'check' command (worker.no_such_module)" in capsys.readouterr().err


def test_an_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["no-such-command"]) == 2
    assert "No such command 'no-such-command'" in capsys.readouterr().err


def test_a_bad_value_is_a_usage_error_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["api", "status", "T1", "--amount", "1e400"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("Error: Invalid value for '--amount': '1e400' is not an amount: ")


def test_the_exit_code_is_the_commands_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECASH_METRICS_PORT", "not-a-port")
    assert cli.main(["check", "--timeout-s", "0.1"]) == 1  # "not checked: ..."
    assert cli.main(["check", "--config"]) == 2


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"ecash-worker {cli.version()}\n"
    assert cli.version() != "unknown"


def every_command() -> list[tuple[str, click.Command]]:
    """Each command and the commands below it (``review list``, ``api history``...), as the CLI loads
    them, by the path a person types."""
    found: list[tuple[str, click.Command]] = [("ecash-worker", cli.cli)]

    def walk(path: str, command: click.Command) -> None:
        found.append((path, command))
        if isinstance(command, click.Group):
            for name in command.list_commands(click.Context(command)):
                sub = command.get_command(click.Context(command), name)
                assert sub is not None, f"{path} {name}"
                walk(f"{path} {name}", sub)

    for name in {**cli.COMMANDS, **cli.plugin_commands()}:
        walk(f"ecash-worker {name}", cli.load_command(name))
    return found


def shows_a_default(param: click.Parameter) -> bool:
    """Whether ``[default: X]`` says something: not for a flag that is off, nothing or an empty list."""
    default = param.to_info_dict()["default"]  # None when there is none (click's own sentinel inside)
    if not isinstance(param, click.Option) or default in (None, (), []):
        return False
    return not (param.is_flag and not param.secondary_opts and not default)


@pytest.mark.parametrize(("path", "command"), every_command(), ids=[path for path, _ in every_command()])
def test_every_option_says_what_it_does_and_its_default(path: str, command: click.Command) -> None:
    ctx = click.Context(command, info_name=path, **command.context_settings)
    text = command.get_help(ctx)
    assert "``" not in text, path  # no reStructuredText marks from the docstrings
    assert "%(" not in text, path  # no argparse formatting left behind
    assert "the rest of the module" not in text, path  # no developer prose
    if isinstance(command, click.Group):
        assert all(sub.short_help for sub in command.commands.values()), path
    for param in command.get_params(ctx):
        assert getattr(param, "help", None), f"{path} {param.opts}: no help"
        if shows_a_default(param):
            record = param.get_help_record(ctx)
            assert record is not None
            assert "default" in record[1], f"{path} {param.opts}: default not shown"


def bash_completions(*words: str) -> tuple[list[str], set[str]]:
    """What click's bash protocol offers for the last of ``words`` (the command line after
    ``ecash-worker``, up to the cursor), and the modules that answering loaded."""
    out, loaded = run_cli(
        env={
            cli.COMPLETE_VAR: "bash_complete",
            "COMP_WORDS": " ".join(["ecash-worker", *words]),
            "COMP_CWORD": str(len(words)),
        }
    )
    return [line.split(",", 1)[1] for line in out.splitlines() if line.startswith("plain,")], loaded


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["re"], ["review", "reconcile"]),
        (["review", ""], ["list", "show", "resolve"]),
        (["review", "resolve", "--outcome", ""], ["succeeded", "failed"]),
        (["reconcile", "--p"], ["--page-size"]),
        (["kafka", "st"], ["start", "stop", "status"]),
        (["send", "charge", "--output", "j"], ["json"]),
        (["--completion", ""], ["bash", "zsh", "fish"]),
        (["check", "--port", ""], []),  # a value to type
        (["no-such-command", ""], []),
    ],
)
def test_completion_offers_commands_options_and_choices(words: list[str], expected: list[str]) -> None:
    assert bash_completions(*words)[0] == expected


def test_completing_the_command_name_imports_no_command() -> None:
    offered, loaded = bash_completions("")
    assert offered == list({**cli.COMMANDS, **cli.plugin_commands()})
    assert offenders(loaded, command_modules()) == []
    # the development package's table of commands, and nothing else of it
    assert offenders(loaded, tuple(p for p in NOT_FOR_CHECK if p != "ecash_dev")) == []
    assert offenders(loaded, ("ecash_dev",)) == ["ecash_dev", "ecash_dev.commands"]


def test_completing_a_subcommand_imports_that_command_only() -> None:
    offered, loaded = bash_completions("api", "")
    assert offered == ["balance", "validate", "history", "status", "ticket"]
    assert offenders(loaded, command_modules()) == ["worker.ops.api_cli"]


def test_the_bash_script_completes_through_the_cli() -> None:
    """The script that ``--completion bash`` prints, sourced by bash, asks this CLI."""
    script = cli.completion_source("bash")
    probe = (
        'COMP_WORDS=(ecash-worker review ""); COMP_CWORD=2; '
        '_ecash_worker_completion ecash-worker; echo "${COMPREPLY[*]}"'
    )
    done = subprocess.run(
        ["bash", "-c", f"{script}\n{probe}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"},
    )
    assert done.stdout.split() == ["list", "show", "resolve"]
    assert "complete -o nosort -F _ecash_worker_completion ecash-worker" in script


@pytest.mark.parametrize(
    ("shell", "marks"),
    [
        ("zsh", ("#compdef ecash-worker", "_ECASH_WORKER_COMPLETE=zsh_complete")),
        ("fish", ("complete --no-files --command ecash-worker", "_ECASH_WORKER_COMPLETE=fish_complete")),
    ],
)
def test_the_zsh_and_fish_scripts_are_printed(
    shell: str, marks: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--completion", shell]) == 0
    script = capsys.readouterr().out
    assert script == cli.completion_source(shell)
    assert all(mark in script for mark in marks), script


@pytest.mark.parametrize(
    ("shell", "cword"),
    [("zsh", "1"), ("fish", "rev")],  # fish passes the word being completed, zsh its index
)
def test_the_zsh_and_fish_protocols_answer_with_descriptions(shell: str, cword: str) -> None:
    env = {cli.COMPLETE_VAR: f"{shell}_complete", "COMP_WORDS": "ecash-worker rev", "COMP_CWORD": cword}
    out, _ = run_cli(env=env)
    assert "review" in out
    assert "manual-review queue" in out  # the table's help line, as the description
