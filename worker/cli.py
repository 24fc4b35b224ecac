"""``ecash-worker``: one command, a subcommand per job. Each subcommand lives in the module it concerns.

Only the chosen subcommand's module is imported: ``ecash-worker check`` loads neither Kafka's client nor
the probe server nor any other command. The table below names each module and its one-line help, so the
top-level ``--help`` imports none of them.

Development tools (the sandbox, the local broker, the demo, the chaos run) are not in this package: they
come with the development package (``ecash-dev``, devtools/), which declares them through the
``ecash_worker.commands`` entry point. Without it (a production install) they say so and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

__all__ = [
    "COMMANDS",
    "DEVELOPMENT_TOOLS",
    "PLUGIN_GROUP",
    "USAGE_ERROR",
    "Command",
    "HelpFormatter",
    "build_parser",
    "complete",
    "completion_script",
    "known_commands",
    "main",
    "parsers",
    "plugin_commands",
    "version",
]

PLUGIN_GROUP = "ecash_worker.commands"  # entry points naming a {name: (module, help)} table
# Named only to say where they went when they are missing; worker never imports them.
DEVELOPMENT_TOOLS = ("sandbox", "kafka", "demo", "chaos")
USAGE_ERROR = 2


class Command(NamedTuple):
    """A subcommand: the module with ``configure_parser(subparsers)`` (setting ``func``), and its help."""

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


def version() -> str:
    """This install's version (the package metadata), read only when ``--version`` asks."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version

    try:
        return installed_version("ecash-worker")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


class _VersionAction(argparse.Action):
    """``--version``: print ``ecash-worker X.Y.Z`` and exit 0 (the metadata is read only then)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(f"ecash-worker {version()}")  # on stdout, as argparse's own --version
        parser.exit()


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every ``--help``: descriptions as written (their paragraphs and examples kept), without the
    reStructuredText literal marks of the docstrings they come from, and each option's default."""

    def _format_text(self, text: str) -> str:
        return super()._format_text(text.replace("``", ""))

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = (action.help or "").replace("``", "")
        if _shows_default(action) and "default" not in text:
            text = f"{text} (default: %(default)s)".lstrip()
        return text or None


def _shows_default(action: argparse.Action) -> bool:
    """Whether ``(default: X)`` says something: not for flags, nothing or an empty list."""
    if action.default in (None, argparse.SUPPRESS, [], ()) or not action.option_strings:
        return False
    return action.nargs != 0 or isinstance(action, argparse.BooleanOptionalAction)


class _CompletionAction(argparse.Action):
    """``--completion bash|zsh``: print the shell's completion script and exit 0."""

    def __call__(self, parser: argparse.ArgumentParser, _: Any, values: Any, *__: Any) -> None:
        print(completion_script(str(values)), end="")
        parser.exit()


# Bash asks ``ecash-worker __complete WORD...`` (the words up to the cursor, the last one being completed)
# for one candidate a line; none means a file name. zsh runs the same function through bashcompinit.
_BASH_COMPLETION = """_ecash_worker() {
    local IFS=$'\\n'
    COMPREPLY=($("${COMP_WORDS[0]}" __complete "${COMP_WORDS[@]:1:$COMP_CWORD}" 2>/dev/null))
    if [[ ${#COMPREPLY[@]} -eq 0 ]]; then compopt -o default 2>/dev/null; fi
    return 0
}
complete -F _ecash_worker ecash-worker
"""
_ZSH_PRELUDE = "autoload -U +X bashcompinit && bashcompinit\n"


def completion_script(shell: str) -> str:
    """The script that makes ``shell`` complete ``ecash-worker`` (``eval "$(ecash-worker --completion
    bash)"``, or save it where the shell loads completions from)."""
    return (_ZSH_PRELUDE if shell == "zsh" else "") + _BASH_COMPLETION


def complete(words: Sequence[str]) -> list[str]:
    """The completions of the last of ``words`` (the command line after ``ecash-worker``, up to the
    cursor): command names, subcommands, options, or an option's or argument's choices. Only the named
    command's module is imported."""
    *before, current = list(words) or [""]
    if not before:
        names = [*known_commands(None), "--help", "--version", "--completion"]
        return [name for name in names if name.startswith(current)]
    if before[0].startswith("-"):
        return (
            [shell for shell in ("bash", "zsh") if shell.startswith(current)]
            if before == ["--completion"]
            else []
        )
    commands = known_commands(before[0])
    if before[0] not in commands:
        return []
    try:
        parser = _child(build_parser(before[0], commands), before[0])
    except SystemExit:  # a broken install: nothing to offer
        return []
    for word in before[1:]:
        parser = _child(parser, word) or parser
    if parser is None:
        return []
    option = parser._option_string_actions.get(before[-1])
    if option is not None and option.nargs != 0:  # completing an option's value
        candidates = [str(choice) for choice in option.choices or ()]
    elif current.startswith("-"):
        candidates = [o for o in parser._option_string_actions if o.startswith("--")]
    else:
        candidates = [
            str(choice)
            for action in parser._actions
            if not action.option_strings and action.choices is not None
            for choice in action.choices
        ]
    return [candidate for candidate in candidates if candidate.startswith(current)]


def _child(parser: argparse.ArgumentParser | None, word: str) -> argparse.ArgumentParser | None:
    """The subcommand ``word`` of ``parser``, if it has one by that name."""
    for action in parser._actions if parser is not None else ():
        if isinstance(action, argparse._SubParsersAction) and word in action.choices:
            child: argparse.ArgumentParser = action.choices[word]
            return child
    return None


def parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """``parser`` and every parser below it (subcommands of subcommands)."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases name the same parser
                found.extend(parsers(child))
    return found


def _parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction[argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="ecash-worker",
        description=(
            "Moves money through the Mandiri e-cash H2H API from Kafka commands, at most once per trace\n"
            "number. Exit codes: docs/operations.md (run: docs/settings.md)."
        ),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction, help="print the version and exit")
    parser.add_argument(
        "--completion",
        action=_CompletionAction,
        choices=("bash", "zsh"),
        default=argparse.SUPPRESS,
        help='print the shell completion script and exit: eval "$(ecash-worker --completion bash)"',
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    return parser, subparsers


def known_commands(name: str | None) -> dict[str, Command]:
    """The product's commands, and the installed plugins' unless ``name`` is a product command."""
    return COMMANDS if name in COMMANDS else {**COMMANDS, **plugin_commands()}


def build_parser(
    name: str | None = None, commands: dict[str, Command] | None = None
) -> argparse.ArgumentParser:
    """The parser for ``name`` (only its module imported), or, without a known name, one that lists every
    command by its help line and imports none of them."""
    commands = known_commands(name) if commands is None else commands
    parser, subparsers = _parser()
    if name in commands:
        command = commands[name]
        try:
            module = importlib.import_module(command.module)
        except ImportError as exc:  # a broken install must say which part is missing
            raise SystemExit(
                f"ecash-worker: cannot load the '{name}' command ({command.module}): {exc}"
            ) from exc
        module.configure_parser(subparsers)
        for each in parsers(parser):
            each.formatter_class = HelpFormatter
        return parser
    for listed, command in commands.items():
        subparsers.add_parser(listed, help=command.help, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["__complete"]:  # the completion script asking (not listed in --help)
        print("\n".join(complete(args_in[1:])))
        return 0
    # The command is the first argument: the top level has no option but --help and --version.
    name = args_in[0] if args_in and not args_in[0].startswith("-") else None
    commands = known_commands(name)
    if name in DEVELOPMENT_TOOLS and name not in commands:
        print(
            f"ecash-worker {name}: a development tool, not part of a production install "
            "(it comes with the ecash-dev package: pip install -e ./devtools)",
            file=sys.stderr,
        )
        return USAGE_ERROR
    parser = build_parser(name, commands)
    args = parser.parse_args(args_in)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
