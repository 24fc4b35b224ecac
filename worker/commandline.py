"""What every ``ecash-worker`` command's command line shares (click): help as written, defaults shown,
``-h`` as well as ``--help``, mutually exclusive options, and the parsed arguments as one namespace for
the command's ``run``.

Commands build their click command from ``Command`` and ``Group`` (``cls=``); a module docstring becomes
help through ``help_text``.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import click

__all__ = [
    "CONTEXT_SETTINGS",
    "Command",
    "Group",
    "arguments",
    "exclusive",
    "help_text",
    "main",
    "parse",
]

# Every command: each option's default in its help, -h as --help, lines up to 120 columns on a terminal.
CONTEXT_SETTINGS: dict[str, Any] = {
    "show_default": True,
    "help_option_names": ["-h", "--help"],
    "max_content_width": 120,
}


def help_text(doc: str | None) -> str:
    """A docstring as help: without the reStructuredText literal marks, and each paragraph kept as written
    (click rewraps paragraphs unless they start with a ``\\b`` line; the examples must stay lines)."""
    paragraphs = [p.strip("\n") for p in (doc or "").replace("``", "").split("\n\n") if p.strip()]
    return "\n\n".join("\b\n" + paragraph for paragraph in paragraphs)


class Command(click.Command):
    """A command with the shared settings; ``exclusive`` names groups of options (parameter names) of
    which at most one may be given (a usage error otherwise)."""

    def __init__(self, *args: Any, exclusive: Sequence[tuple[str, ...]] = (), **kwargs: Any) -> None:
        kwargs.setdefault("context_settings", dict(CONTEXT_SETTINGS))
        super().__init__(*args, **kwargs)
        self.exclusive = tuple(exclusive)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)
        if not ctx.resilient_parsing:
            for names in self.exclusive:
                exclusive(ctx, *names)
        return rest


class Group(click.Group):
    """A command of commands (``api balance``, ``review resolve``), listed in the order they were added."""

    command_class = Command

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("context_settings", dict(CONTEXT_SETTINGS))
        super().__init__(*args, **kwargs)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


Group.group_class = Group


def exclusive(ctx: click.Context, *names: str) -> None:
    """A usage error (exit 2) when more than one of the options ``names`` (parameter names) was given."""
    given = [
        param.opts[0]
        for param in ctx.command.params
        if param.name in names and ctx.get_parameter_source(param.name or "") is not _DEFAULT
    ]
    if len(given) > 1:
        raise click.UsageError(f"{' and '.join(given)} cannot be used together", ctx)


_DEFAULT = click.core.ParameterSource.DEFAULT


def arguments(ctx: click.Context) -> SimpleNamespace:
    """The parameters of ``ctx`` and of the commands above it, as one namespace; below a group named
    ``review``, the chosen subcommand's name is ``review_command`` (``command`` below the top level)."""
    values: dict[str, Any] = {}
    chain = []
    each: click.Context | None = ctx
    while each is not None:
        chain.append(each)
        each = each.parent
    for each in reversed(chain):
        values.update(each.params)
        if each.parent is not None:
            group = each.parent.command.name or ""
            values[f"{group}_command" if group.isidentifier() else "command"] = each.info_name
    return SimpleNamespace(**values)


def parse(command: click.Command, argv: Sequence[str], name: str | None = None) -> SimpleNamespace:
    """What ``run`` gets for the command line ``argv`` of ``command`` (through its groups, to the chosen
    command), without running anything; a usage error raises ``click.UsageError``."""
    ctx = command.make_context(name or command.name, list(argv))
    while isinstance(ctx.command, click.Group):
        rest = [*ctx._protected_args, *ctx.args]  # what the group left for its subcommand
        sub_name, sub, rest = ctx.command.resolve_command(ctx, rest)
        assert sub is not None  # resolve_command fails on an unknown name
        ctx = sub.make_context(sub_name, rest, parent=ctx)
    return arguments(ctx)


def main(command: click.Command, argv: Sequence[str] | None, prog_name: str, **extra: Any) -> int:
    """Run ``command`` with ``argv`` (default: the process's arguments) and return the exit code instead of
    exiting: the command's own (what its callback returns), 2 for a usage error, 0 after ``--help``."""
    try:
        code = command.main(
            args=None if argv is None else list(argv), prog_name=prog_name, standalone_mode=False, **extra
        )
    except click.ClickException as exc:  # a usage error (2) or another error click reports
        exc.show()
        return exc.exit_code
    except click.Abort:  # Ctrl-C at a prompt, or EOF
        click.echo("Aborted!", err=True)
        return 1
    except SystemExit as exc:  # the completion protocol answers and exits
        return exc.code if isinstance(exc.code, int) else 1
    return code if isinstance(code, int) else 0
