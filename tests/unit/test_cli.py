"""``ecash-worker``: only the chosen subcommand's module is imported; the development tools come from the
development package's entry point, and without it they say so and exit 2."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys

import pytest

from worker import cli
from worker.settings import ENV_PREFIX, SANDBOX_API_IDENTITY

# What ``check`` never needs: Kafka's clients, the probe server, the API client, the development package
# and the other commands.
NOT_FOR_CHECK = (
    "aiokafka",
    "aiohttp",
    "httpx",  # the probe uses the standard library's client: httpx would load click and rich
    "rich",
    "click",
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
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print("\\nLOADED " + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def modules_loaded_by(*argv: str) -> set[str]:
    """``ecash-worker <argv>`` in a fresh interpreter (exit 0): the modules in ``sys.modules`` after it."""
    env = {**os.environ, **{ENV_PREFIX + k.upper(): v for k, v in SANDBOX_API_IDENTITY.items()}}
    done = subprocess.run(
        [sys.executable, "-c", LOADED, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    report = json.loads(done.stdout.rsplit("\nLOADED ", 1)[-1])
    assert report["code"] == 0, done.stdout + done.stderr
    return set(report["modules"])


def offenders(loaded: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in loaded if any(m == p or m.startswith(p + ".") for p in prefixes))


@pytest.mark.parametrize("argv", [("check", "--help"), ("check", "--config")])
def test_check_loads_only_what_it_needs(argv: tuple[str, ...]) -> None:
    loaded = modules_loaded_by(*argv)
    assert "worker.observability.check" in loaded  # the probe ran
    assert offenders(loaded, NOT_FOR_CHECK) == []


def test_the_top_level_help_lists_every_command_and_imports_none() -> None:
    loaded = modules_loaded_by("--help")
    assert offenders(loaded, tuple(c.module for c in cli.COMMANDS.values())) == []
    assert offenders(loaded, tuple(c.module for c in cli.plugin_commands().values())) == []
    assert offenders(loaded, ("aiokafka", "starlette", "uvicorn")) == []


def test_the_top_level_help_names_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    listed = capsys.readouterr().out
    for name in (*cli.COMMANDS, *cli.DEVELOPMENT_TOOLS):
        assert f"\n    {name}" in listed, name


def test_the_development_package_declares_the_development_tools() -> None:
    found = cli.plugin_commands()
    assert set(found) == set(cli.DEVELOPMENT_TOOLS)
    assert all(command.module.startswith("ecash_dev.") for command in found.values())


def test_each_help_line_is_the_one_its_module_gives() -> None:
    """The table stands in for the modules in ``--help``: it must say what they say."""
    for name, command in {**cli.COMMANDS, **cli.plugin_commands()}.items():
        parser = argparse.ArgumentParser()
        subparsers = parser.add_subparsers()
        importlib.import_module(command.module).configure_parser(subparsers)
        [action] = subparsers._choices_actions
        assert (action.dest, action.help) == (name, command.help)


@pytest.mark.parametrize("name", cli.DEVELOPMENT_TOOLS)
def test_without_the_development_package_its_commands_say_what_they_are(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "plugin_commands", dict)  # a production install: no entry point
    assert cli.main([name, "--help"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"ecash-worker {name}: a development tool")


def test_without_the_development_package_the_help_lists_the_product_only(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "plugin_commands", dict)
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    listed = capsys.readouterr().out
    assert "\n    run" in listed
    assert not [name for name in cli.DEVELOPMENT_TOOLS if f"\n    {name} " in listed]


def test_an_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["no-such-command"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"ecash-worker {cli.version()}\n"
    assert cli.version() != "unknown"


def every_parser() -> list[tuple[str, argparse.ArgumentParser]]:
    """Each command's parser and the parsers below it (``review list``, ``api history``...), as the CLI
    builds them."""
    found: list[tuple[str, argparse.ArgumentParser]] = []
    for name in {**cli.COMMANDS, **cli.plugin_commands()}:
        found.extend((each.prog, each) for each in cli.parsers(cli.build_parser(name)))
    return found


@pytest.mark.parametrize(("prog", "parser"), every_parser(), ids=[prog for prog, _ in every_parser()])
def test_every_option_says_what_it_does_and_its_default(prog: str, parser: argparse.ArgumentParser) -> None:
    text = parser.format_help()
    assert "``" not in text, prog  # no reStructuredText marks from the docstrings
    assert "the rest of the module" not in text, prog  # no developer prose
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            assert all(choice.help for choice in action._choices_actions), prog
            continue
        assert action.help, f"{prog} {action.option_strings or action.dest}: no help"
        if cli._shows_default(action):
            formatter = parser._get_formatter()
            shown = formatter._expand_help(action) if isinstance(formatter, cli.HelpFormatter) else ""
            assert "default" in shown, f"{prog} {action.option_strings}: default not shown"


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["re"], ["review", "reconcile"]),
        (["review", ""], ["list", "show", "resolve"]),
        (["review", "resolve", "--outcome", ""], ["succeeded", "failed"]),
        (["reconcile", "--p"], ["--page-size"]),
        (["kafka", "st"], ["start", "stop", "status"]),
        (["send", "charge", "--output", "j"], ["json"]),
        (["--completion", ""], ["bash", "zsh"]),
        (["check", "--port", ""], []),  # a value to type: the shell offers file names
        (["no-such-command", ""], []),
    ],
)
def test_completion_offers_commands_options_and_choices(words: list[str], expected: list[str]) -> None:
    assert cli.complete(words) == expected


def test_completing_the_command_name_imports_no_command() -> None:
    loaded = modules_loaded_by("__complete", "")
    commands = {**cli.COMMANDS, **cli.plugin_commands()}.values()
    assert offenders(loaded, tuple(c.module for c in commands)) == []
    # the development package's table of commands, and nothing else of it
    assert offenders(loaded, tuple(p for p in NOT_FOR_CHECK if p != "ecash_dev")) == []


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_the_completion_script_completes_in_bash(shell: str) -> None:
    """The script that ``--completion`` prints, sourced by bash, asks this CLI (zsh: through bashcompinit)."""
    script = cli.completion_script(shell).replace("autoload -U +X bashcompinit && bashcompinit\n", "")
    probe = 'COMP_WORDS=(ecash-worker review ""); COMP_CWORD=2; _ecash_worker; echo "${COMPREPLY[*]}"'
    done = subprocess.run(
        ["bash", "-c", f"{script}\n{probe}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"},
    )
    assert done.stdout.split() == ["list", "show", "resolve"]
