"""``ecash-worker``: one command, a subcommand per job. Each subcommand lives in the module it concerns.

The command line is click's (a dependency the worker already has through uvicorn), as a lazy group: only
the chosen subcommand's module is imported, so ``ecash-worker check`` loads neither Kafka's client nor the
probe server nor any other command. The table below names each module (which offers its click command as
``command``) and its one-line help, so the top-level ``--help`` and completing a command name import none
of them. Shell completion (bash, zsh, fish) is click's own: ``ecash-worker --completion bash`` prints the
script, which asks the CLI itself through ``_ECASH_WORKER_COMPLETE``.

Development tools (the sandbox, the local broker, the demo, the chaos run) are not in this package: they
come with the development package (``ecash-dev``, devtools/), which declares them through the
``ecash_worker.commands`` entry point. Without it (a production install) they say so and exit 2.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import NamedTuple

import click
from click.shell_completion import CompletionItem, get_completion_class

from worker import commandline
from worker.commandline import CONTEXT_SETTINGS, Group

__all__ = [
    "COMMANDS",
    "COMPLETE_VAR",
    "DEVELOPMENT_TOOLS",
    "PLUGIN_GROUP",
    "SHELLS",
    "USAGE_ERROR",
    "Command",
    "LazyGroup",
    "cli",
    "completion_source",
    "known_commands",
    "load_command",
    "main",
    "plugin_commands",
    "version",
]

PLUGIN_GROUP = "ecash_worker.commands"  # entry points naming a {name: (module, help)} table
# Named only to say where they went when they are missing; worker never imports them.
DEVELOPMENT_TOOLS = ("sandbox", "kafka", "demo", "chaos")
USAGE_ERROR = 2
PROG = "ecash-worker"
COMPLETE_VAR = "_ECASH_WORKER_COMPLETE"  # click's completion protocol: bash_source, bash_complete, ...
SHELLS = ("bash", "zsh", "fish")


class Command(NamedTuple):
    """A subcommand: the module offering its click command as ``command``, and its one-line help."""

    module: str
    help: str


COMMANDS: dict[str, Command] = {
    "run": Command(
        "worker.cli_run",
        "run the worker (settings from ECASH_* environment variables; see docs/settings.md)",
    ),
    "check": Command(
        "worker.observability.check",
        "exit 0 if the running worker is ready (or live, with --live), else 1, with a one-line reason",
    ),
    "schemas": Command("worker.schema_export", "write or check schemas/*.schema.json from the contracts"),
    "api": Command(
        "worker.ops.api_cli", "ask the E-Cash API one question (balance, validate, history, status, ticket)"
    ),
    "send": Command("worker.ops.send", "produce one charge or credit command and wait for its result"),
    "review": Command(
        "worker.ops.review", "the manual-review queue: list, show and resolve unresolved commands"
    ),
    "reconcile": Command(
        "worker.ops.reconcile", "compare the published results with the E-Cash transaction history"
    ),
}


def plugin_commands() -> dict[str, Command]:
    """The subcommands installed distributions add (entry points in ``PLUGIN_GROUP``); never the product's
    own names."""
    from importlib.metadata import entry_points

    found: dict[str, Command] = {}
    for entry_point in entry_points(group=PLUGIN_GROUP):
        table = entry_point.load()
        for name, (module, help_line) in table.items():
            if name not in COMMANDS:
                found.setdefault(name, Command(module, help_line))
    return found


def known_commands(name: str | None) -> dict[str, Command]:
    """The product's commands, and the installed plugins' unless ``name`` is a product command."""
    return COMMANDS if name in COMMANDS else {**COMMANDS, **plugin_commands()}


def version() -> str:
    """This install's version (the package metadata), read only when ``--version`` asks."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version

    try:
        return installed_version("ecash-worker")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def load_command(name: str) -> click.Command:
    """The click command ``name``, importing its module (and no other). A development tool without the
    development package, or a broken install, is said in one line on stderr: exit 2, or 1."""
    commands = known_commands(name)
    if name not in commands:
        if name in DEVELOPMENT_TOOLS:
            click.echo(
                f"{PROG} {name}: a development tool, not part of a production install "
                "(it comes with the ecash-dev package: pip install -e ./devtools)",
                err=True,
            )
            raise click.exceptions.Exit(USAGE_ERROR)
        raise click.UsageError(f"No such command '{name}'.")
    module_name = commands[name].module
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:  # a broken install must say which part is missing
        click.echo(f"{PROG}: cannot load the '{name}' command ({module_name}): {exc}", err=True)
        raise click.exceptions.Exit(1) from exc
    command: click.Command = module.command
    return command


class LazyGroup(Group):
    """click's documented lazily-loading group: the names and help lines come from the tables, a command's
    module is imported only by ``get_command`` (running, or completing past, that command)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(known_commands(None))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        known = cmd_name in known_commands(cmd_name)
        if not known and (cmd_name not in DEVELOPMENT_TOOLS or ctx.resilient_parsing):
            return None  # click says "No such command"; completing, nothing to offer (and nothing said)
        return load_command(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the tables' help lines (click's own would import every command)."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, command.help) for name, command in known_commands(None).items()])

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """Command names (with their help lines) and the top-level options, importing no command; nothing
        after a word that names no command."""
        if ctx._protected_args:  # click could not resolve the command word the line has
            return []
        names = [
            CompletionItem(name, help=command.help)
            for name, command in known_commands(None).items()
            if name.startswith(incomplete)
        ]
        return names + click.Command.shell_complete(self, ctx, incomplete)


def completion_source(shell: str) -> str:
    """The script that makes ``shell`` complete ``ecash-worker`` (``eval "$(ecash-worker --completion
    bash)"``, or save it where the shell loads completions from): click's, for this command."""
    complete = get_completion_class(shell)
    if complete is None:
        raise ValueError(f"no completion for {shell!r}")
    return complete(cli, {}, PROG, COMPLETE_VAR).source()


def _print_version(ctx: click.Context, _: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"{PROG} {version()}")
        ctx.exit(0)


def _print_completion(ctx: click.Context, _: click.Parameter, value: str | None) -> None:
    if value is not None and not ctx.resilient_parsing:
        click.echo(completion_source(value), nl=False)
        ctx.exit(0)


@click.group(
    cls=LazyGroup,
    name=PROG,
    context_settings=CONTEXT_SETTINGS,
    subcommand_metavar="COMMAND [ARGS]...",
    help=(
        "\b\nMoves money through the Mandiri e-cash H2H API from Kafka commands, at most once per trace\n"
        "number. Exit codes: docs/operations.md (run: docs/settings.md)."
    ),
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="print the version and exit",
)
@click.option(
    "--completion",
    type=click.Choice(SHELLS),
    expose_value=False,
    is_eager=True,
    callback=_print_completion,
    help='print the shell completion script and exit: eval "$(ecash-worker --completion bash)"',
)
def cli() -> None:
    """The top level: the options above, then the command."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ecash-worker`` with ``argv`` (default: the process's arguments) and return the exit code:
    the command's own, 2 for a usage error, 0 after ``--help``, ``--version`` or ``--completion``."""
    return commandline.main(cli, argv, PROG, complete_var=COMPLETE_VAR)


if __name__ == "__main__":
    sys.exit(main())
