"""``ecash-worker sandbox``: run the sandbox host standalone until SIGINT/SIGTERM.

ecash-worker sandbox --port 18080 --seed-wallets 2000 --fault 'charge:hang_after_commit:p=0.05'
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
from pydantic import SecretStr, ValidationError

from ecash_dev.sandbox.faults import FaultRule, FaultSpecError, parse_fault_spec, validation_reasons
from ecash_dev.sandbox.server import RunningSandbox, loop_factory, serve_sandbox
from ecash_dev.sandbox.state import AgentConfig, DuplicateTracePolicy, SandboxConfig, demo_msisdn
from worker.commandline import Command, arguments

_DEFAULTS = SandboxConfig()


def _faults(_: click.Context, param: click.Parameter, specs: tuple[str, ...]) -> list[FaultRule]:
    try:
        return [parse_fault_spec(spec) for spec in specs]
    except FaultSpecError as exc:
        raise click.BadParameter(str(exc), param=param) from None


_PATH = click.Path(dir_okay=False, path_type=Path)


@click.command(
    "sandbox",
    cls=Command,
    short_help="run the E-Cash sandbox host (test-only: its /admin API needs no key)",
    help="A fake E-Cash H2H host with fault injection. See docs/sandbox.md.",
)
@click.option("--host", default="127.0.0.1", help="address to listen on")
@click.option("--port", type=int, default=18080, help="port to listen on")
@click.option(
    "--token-lifetime-s",
    type=float,
    default=_DEFAULTS.token_lifetime_s,
    help="how long a session token lasts, 0 = never expires",
)
@click.option(
    "--duplicate-trace",
    type=click.Choice([p.value for p in DuplicateTracePolicy]),
    default=_DEFAULTS.duplicate_trace.value,
    help="what a repeated Charge/Credit trace number does",
)
@click.option(
    "--duplicate-reject-code",
    default=_DEFAULTS.duplicate_reject_code,
    help="the response code of a rejected duplicate (--duplicate-trace reject)",
)
@click.option(
    "--unknown-status-code",
    default=_DEFAULTS.unknown_status_code,
    help="what Status Inquiry answers for a trace number it does not know",
)
@click.option("--latency-ms", type=float, default=0.0, help="base latency added to every call")
@click.option(
    "--auto-create-wallets/--no-auto-create-wallets",
    default=False,
    help="an unknown MSISDN gets a new wallet instead of an error",
)
@click.option("--default-balance", default=str(_DEFAULTS.default_balance), help="the balance of a new wallet")
@click.option("--seed-wallets", type=int, default=0, metavar="N", help="create N demo wallets")
@click.option(
    "--single-session-per-agent/--no-single-session-per-agent",
    default=False,
    help="a Login ends the agent's other sessions, as some banks do",
)
@click.option(
    "--fault",
    multiple=True,
    callback=_faults,
    metavar="SPEC",
    help="operation:kind[:key=value,...], e.g. charge:hang_after_commit:p=0.05 (repeatable)",
)
@click.option("--random-seed", type=int, default=None, help="makes probabilistic faults repeatable")
@click.option("--hang-s", type=float, default=_DEFAULTS.hang_s, help="how long a hang fault holds a call")
@click.option("--private-key", type=_PATH, default=None, help="RSA private key (PEM) for Credentials")
@click.option("--agent-password-file", type=_PATH, default=None, help="the default agent's password")
@click.pass_context
def command(ctx: click.Context, /, **_: Any) -> int:
    return run(arguments(ctx))


def config_from_args(args: SimpleNamespace) -> SandboxConfig:
    """The configuration the arguments describe; raises ValueError naming what is wrong."""
    agents = list(_DEFAULTS.agents)
    if args.agent_password_file is not None:
        password = args.agent_password_file.read_text().strip()
        agents[0] = agents[0].model_copy(update={"password": SecretStr(password)})
    pem = SecretStr(args.private_key.read_text()) if args.private_key is not None else None
    try:
        return SandboxConfig(
            agents=[AgentConfig.model_validate(agent) for agent in agents],
            token_lifetime_s=args.token_lifetime_s,
            duplicate_trace=args.duplicate_trace,
            duplicate_reject_code=args.duplicate_reject_code,
            unknown_status_code=args.unknown_status_code,
            base_latency_ms=args.latency_ms,
            auto_create_wallets=args.auto_create_wallets,
            default_balance=args.default_balance,
            demo_wallets=args.seed_wallets,
            single_session_per_agent=args.single_session_per_agent,
            faults=args.fault,
            random_seed=args.random_seed,
            hang_s=args.hang_s,
            private_key_pem=pem,
        )
    except ValidationError as exc:
        raise ValueError(validation_reasons(exc)) from None


def run(args: SimpleNamespace) -> int:
    """Exit 0 when stopped by a signal; 2 (one line on stderr) for an argument that cannot work."""
    if not 0 <= args.port <= 65_535:
        print(f"ecash-worker sandbox: --port: {args.port} is not a port number (0-65535)", file=sys.stderr)
        return 2
    try:
        config = config_from_args(args)
    except (ValueError, OSError) as exc:
        print(f"ecash-worker sandbox: {exc}", file=sys.stderr)
        return 2
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        try:
            runner.run(_serve_until_signalled(config, args.host, args.port))
        except OSError as exc:
            where = f"{args.host}:{args.port}"
            print(
                f"ecash-worker sandbox: --port: cannot listen on {where} ({exc.strerror or exc})",
                file=sys.stderr,
            )
            return 2
    return 0


async def _serve_until_signalled(config: SandboxConfig, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serve_sandbox(config, host=host, port=port) as running:
        print(_banner(running), flush=True)
        await stop.wait()


def _banner(running: RunningSandbox) -> str:
    sandbox = running.sandbox
    config = sandbox.config
    lines = [
        f"E-Cash sandbox: API {running.base_url}  admin {running.admin_url}",
        f"  agent {config.agents[0].username}; {len(sandbox.state.wallets)} wallets"
        + (f" ({demo_msisdn(1)} ...)" if config.demo_wallets else "")
        + f"; duplicate trace: {config.duplicate_trace.value}; unknown status: {config.unknown_status_code}",
        f"  faults (seed {sandbox.faults.seed}): "
        + (", ".join(f"{r.operation}:{r.kind.value}" for r in config.faults) or "none"),
    ]
    return "\n".join(lines)
