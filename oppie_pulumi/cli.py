"""The ``oppie-pulumi`` command.

``oppie-pulumi generate`` lists the agents of an organisation and writes a Pulumi Python program that
declares each one as it is, with its ``adopt_id``: ``pulumi up`` on it brings the whole fleet under code
without creating, replacing or changing anything. The token comes from the environment only (never a
command-line argument, which would land in shell history and process lists) and is never printed.
Exit status: 0 done; 1 the API call failed (or the file could not be written); 2 a usage or configuration
error, such as no token.

``oppie-pulumi drift`` reviews stacks against the API (``drift``): exit status 0 in sync, 2 findings (as
``--fail-on`` counts them), 1 the review could not run.

``oppie-pulumi recover`` puts stacks right after a killed ``pulumi up`` (``drift.recover``), unattended: exit
status 0 when every interrupted create was settled (or there was none), 1 when one needs a person or a stack could
not be read or written.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from . import __version__
from ._client import client_for
from ._config import DEFAULT_BASE_URL, Settings
from ._exceptions import ConfigError, OppieError
from ._generate import render_program

__all__ = ["build_parser", "main"]

TOKEN_ENV = "OPPIE_API_TOKEN"
BASE_URL_ENV = "OPPIE_BASE_URL"

# What --token-env may be echoed as: an environment variable name in the usual style.
_VARIABLE_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")

EXIT_OK = 0
EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_FINDINGS = 2  # drift: findings (a usage error in drift is 2 as well, and says so on stderr)


NOT_SHOWN = "values are never shown: an argument may be a secret; the token is read from the environment only"


class _QuietParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors never echo a value from the command line.

    Someone will type ``--token <token>`` (or paste a token where an option was expected); argparse would
    print it back, into terminal scrollback and CI logs. Options are named, values withheld. Abbreviations
    are off (``allow_abbrev=False``), so ``--token`` can never be taken for ``--token-env``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras and self.prog == "oppie-pulumi":
            # The top-level parser reports what no parser took.
            self.error(_unrecognized(extras))
        return parsed, extras

    def error(self, message: str) -> NoReturn:
        # argparse quotes what it could not use ("invalid choice: '<value>'"): withhold it.
        prefix = "unrecognized arguments: "
        if message.startswith(prefix) and NOT_SHOWN not in message:
            message = _unrecognized(message.removeprefix(prefix).split())
        message = re.sub(r"invalid choice: .*? \(choose from", "invalid choice (choose from", message)
        message = re.sub(r"invalid (\w+) value: .*", r"invalid \1 value", message)
        if NOT_SHOWN not in message and "choice" in message:
            message += f" ({NOT_SHOWN})"
        super().error(message)


def _unrecognized(extras: Sequence[str]) -> str:
    """Name the options among ``extras`` (without any ``=value``) and only count the values."""
    options = [extra.split("=", 1)[0] for extra in extras if extra.startswith("-")]
    values = len(extras) - len(options)
    parts = [" ".join(options)] if options else []
    if values:
        parts.append(f"{values} value{'s' if values > 1 else ''}")
    return f"unrecognized arguments: {' and '.join(parts)} ({NOT_SHOWN})"


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``oppie-pulumi``."""
    parser = _QuietParser(
        prog="oppie-pulumi",
        description="Tools for managing AI phone agents with Pulumi (the oppie-pulumi provider).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    generate = commands.add_parser(
        "generate",
        help="write a Pulumi program that adopts every agent of the organisation",
        description=(
            "List the organisation's agents and write a Pulumi Python program declaring each one with its "
            "current settings and its adopt_id, so that `pulumi up` takes the fleet over without creating, "
            "replacing or changing any agent. Put the output in a Pulumi project as __main__.py."
        ),
        epilog=(
            f"The API token is read from the environment variable {TOKEN_ENV} (or the one named by "
            f"--token-env), never from the command line. Other settings follow the provider's variables "
            f"({BASE_URL_ENV}, OPPIE_TIMEOUT_SECONDS, OPPIE_MAX_RETRIES, OPPIE_MAX_REQUESTS_PER_MINUTE). "
            "Exit status: 0 done, 1 API error, 2 usage or configuration error."
        ),
    )
    generate.add_argument(
        "--base-url",
        metavar="URL",
        help=f"the API's base URL (default: ${BASE_URL_ENV}, else {DEFAULT_BASE_URL})",
    )
    generate.add_argument(
        "--token-env",
        metavar="VAR",
        default=TOKEN_ENV,
        help="the environment variable holding the API token (default: %(default)s)",
    )
    generate.add_argument(
        "--out",
        metavar="PATH",
        default="-",
        help="file to write, or a directory to write __main__.py in; '-' for standard output (default)",
    )
    generate.add_argument("--force", action="store_true", help="overwrite the file if it exists")
    _add_drift(commands)
    _add_recover(commands)
    return parser


def _add_recover(commands: Any) -> None:
    recover = commands.add_parser(
        "recover",
        help="settle the creates a killed `pulumi up` left pending, before the next `pulumi up`",
        description=(
            "For each stack: release the lock a killed command left (pulumi cancel), then for each pending create "
            "of a phone agent give the resource the one agent of its spec that no given stack holds (the agent "
            "the killed create made), or drop the create if its POST never landed, and write the state back "
            "(pulumi stack import). A create with several candidates is left to a person. Then run pulumi up."
        ),
        epilog="Pass every stack that holds agents of the organisation: an agent another stack holds is never "
        "taken. Exit status: 0 settled (or nothing to do), 1 a create needs a person, or a stack could not be read "
        "or written.",
    )
    _add_stacks(recover, "recover")


def _add_stacks(command: Any, verb: str) -> None:
    """``--stack [DIR:]STACK`` (repeated) and ``-C DIR``: how ``drift`` and ``recover`` both name stacks."""
    command.add_argument(
        "--stack",
        dest="stacks",
        action="append",
        required=True,
        metavar="[DIR:]STACK",
        help=f"a stack to {verb} (repeat for several); DIR: its project folder, if not --cwd's",
    )
    command.add_argument("-C", "--cwd", default=".", metavar="DIR", help="the project folder (default: .)")


FAIL_ON = ("drift", "replace", "unmanaged")


def _add_drift(commands: Any) -> None:
    drift = commands.add_parser(
        "drift",
        help="review stacks of phone agents against the API: drift, deletions, unmanaged agents",
        description=(
            "Read each stack's state (pulumi stack export, read-only: no lock is taken), list each organisation "
            "the stacks point at once, and give a verdict on every agent: in sync, drifted (per field), deleted "
            "outside Pulumi, held by two resources, unmanaged (in no reviewed stack), or unreadable; with the "
            "coverage (managed agents out of all) and the command that fixes each finding."
        ),
        epilog=(
            "Settings per stack as the provider reads them: the stack's oppie:* config (secrets decrypted by "
            f"Pulumi), then the environment ({TOKEN_ENV}, {BASE_URL_ENV}, ...). The pulumi CLI on PATH reads the "
            "states, from whatever backend it is logged into. Exit status: 0 in sync, 2 findings (see "
            "--fail-on), 1 the review could not run (a stack that cannot be read, a bad token, an API out of "
            "reach)."
        ),
    )
    _add_stacks(drift, "review")
    drift.add_argument("--format", choices=("text", "json", "markdown"), default="text", help="default: text")
    drift.add_argument("--output", metavar="FILE", help="write the report to FILE (appending) instead of stdout")
    drift.add_argument(
        "--fail-on",
        default=",".join(FAIL_ON),
        metavar="KINDS",
        help="the findings that make the exit status 2: a comma-separated list of drift (every changed, deleted or "
        "doubly held agent), replace (only drift whose fix replaces an agent), unmanaged; or none (default: "
        "%(default)s)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``oppie-pulumi`` with ``argv`` (default: the process's arguments); returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "generate":
        return _generate(args, sys.stdout, sys.stderr)
    if args.command == "drift":
        return _drift(args, sys.stdout, sys.stderr)
    if args.command == "recover":
        return _recover(args, sys.stdout, sys.stderr)
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse only accepts known commands


def _fail(stderr: TextIO, message: str, status: int, command: str = "generate") -> int:
    print(f"oppie-pulumi {command}: {message}", file=stderr)
    return status


def _drift(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from . import drift
    from .drift import report

    kinds = {kind.strip() for kind in args.fail_on.split(",") if kind.strip()}
    if not kinds or not kinds <= {*FAIL_ON, "none"} or ("none" in kinds and len(kinds) > 1):
        return _fail(stderr, f"--fail-on takes {', '.join(FAIL_ON)} (comma-separated), or none", EXIT_USAGE, "drift")
    refs = [drift.StackRef.parse(text, Path(args.cwd)) for text in args.stacks]
    show = args.format == "text" or stderr.isatty()
    result = drift.run(refs, progress=lambda line: print(f"oppie-pulumi drift: {line}", file=stderr) if show else None)
    text = {"text": report.as_text, "json": report.as_json, "markdown": report.as_markdown}[args.format](result)
    if args.output:
        try:
            with open(args.output, "a", encoding="utf-8") as out:
                out.write(text)
        except OSError as exc:
            return _fail(stderr, f"cannot write {args.output}: {exc.strerror or exc}", EXIT_API_ERROR, "drift")
    else:
        stdout.write(text)
        stdout.flush()
    errors = [f"stack {s.ref.name}: {s.error}" for s in result.stacks if s.error]
    errors += [f"{report.organisation_label(org.base_url)}: {org.error}" for org in result.organisations if org.error]
    if errors:
        for error in errors:
            _fail(stderr, error, EXIT_API_ERROR, "drift")
        return EXIT_API_ERROR
    return EXIT_FINDINGS if _counted(result, kinds) else EXIT_OK


def _recover(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from .drift import StackRef
    from .drift.recover import recover

    refs = [StackRef.parse(text, Path(args.cwd)) for text in args.stacks]
    outcomes = recover(refs, progress=lambda line: print(f"oppie-pulumi recover: {line}", file=stderr))
    status = EXIT_OK
    for outcome in outcomes:
        for path in outcome.mended:
            print(
                f"{outcome.stack}: removed {path}, which the killed command left torn (Pulumi's file backend writes "
                "it in place), so no command could read the state; the state beside it is whole",
                file=stdout,
            )
        for urn, agent_id in sorted(outcome.adopted.items()):
            print(f"{outcome.stack}: {urn} now holds {agent_id}, the agent its interrupted create made", file=stdout)
        for urn in sorted(outcome.dropped):
            print(f"{outcome.stack}: {urn}: its interrupted create made no agent; `pulumi up` creates it", file=stdout)
        for urn, ids in sorted(outcome.undecided.items()):
            status = EXIT_API_ERROR
            _fail(
                stderr,
                f"stack {outcome.stack}: {urn}: {len(ids)} agents of its spec are held by no given stack "
                f"({', '.join(ids)}): keep one (adopt_id, or `pulumi import` with the plugin), delete the others",
                status,
                "recover",
            )
        if outcome.error:
            status = _fail(stderr, f"stack {outcome.stack}: {outcome.error}", EXIT_API_ERROR, "recover")
        elif not (outcome.changed or outcome.undecided):
            print(f"{outcome.stack}: no interrupted create to settle", file=stdout)
    return status


def _counted(result: Any, kinds: set[str]) -> int:
    """How many findings of the review count under ``--fail-on``: ``drift`` counts every drifted, deleted or
    doubly held agent; ``replace`` only those whose fix replaces the agent (a gate for what must not be applied
    unattended); ``unmanaged`` the agents no reviewed stack holds."""
    count = 0
    for agent in result.agents:
        if agent.verdict == "unmanaged":
            count += "unmanaged" in kinds
        elif agent.verdict in ("drifted", "deleted", "held_twice"):
            count += "drift" in kinds or ("replace" in kinds and agent.replaces)
    return count


def _settings(args: argparse.Namespace) -> Settings:
    """The provider's settings from the environment, with ``--base-url`` and ``--token-env`` applied."""
    environ = {key: value for key, value in os.environ.items() if key.startswith("OPPIE_")}
    environ.pop(TOKEN_ENV, None)
    token = os.environ.get(args.token_env, "").strip()
    if token:
        environ[TOKEN_ENV] = token
    if args.base_url:
        environ[BASE_URL_ENV] = args.base_url
    return Settings.resolve(lambda _key: None, environ)


def _generate(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    try:
        settings = _settings(args)
    except ConfigError as exc:
        return _fail(stderr, str(exc), EXIT_USAGE)
    if not settings.api_token:
        return _fail(stderr, _no_token(args.token_env), EXIT_USAGE)
    target: Path | None = None
    if args.out != "-":
        target = Path(args.out)
        # "DIR/" names a folder even before it exists (Path drops the trailing separator).
        if target.is_dir() or args.out.endswith(tuple(sep for sep in (os.sep, os.altsep, "/") if sep)):
            target = target / "__main__.py"
        if target.exists() and not args.force:
            return _fail(stderr, f"{target} exists; pass --force to overwrite it", EXIT_USAGE)

    try:
        agents = client_for(settings).list()
    except ConfigError as exc:
        return _fail(stderr, str(exc), EXIT_USAGE)
    except OppieError as exc:
        return _fail(stderr, str(exc), EXIT_API_ERROR)

    program = render_program(agents, source=settings.base_url)
    if target is None:
        stdout.write(program.source)
        stdout.flush()
    else:
        failure = _write(target, program.source)
        if failure is not None:
            return _fail(stderr, failure, EXIT_API_ERROR)

    for warning in program.warnings:
        print(f"oppie-pulumi generate: warning: {warning}", file=stderr)
    where = "standard output" if target is None else str(target)
    noun = "agent" if program.count == 1 else "agents"
    print(
        f"oppie-pulumi generate: wrote {program.count} {noun} from {settings.base_url} to {where}"
        + (f" ({len(program.warnings)} to fix by hand, marked FIXME)" if program.warnings else ""),
        file=stderr,
    )
    return EXIT_OK


def _no_token(token_env: str) -> str:
    """Why there is no token, and how to give one (never on the command line)."""
    if _VARIABLE_NAME.fullmatch(token_env):
        return (
            f"no API token: the environment variable {token_env} is not set. Set it (export {token_env}=...) or "
            "name another variable with --token-env; the token is not accepted on the command line."
        )
    # Not shaped like a variable name: most likely the token itself, typed where its variable's name goes.
    return (
        "no API token: --token-env takes the NAME of an environment variable (such as OPPIE_API_TOKEN), not "
        f"a token, and nothing is set under the one given ({NOT_SHOWN}). Export the token "
        f"(export {TOKEN_ENV}=...) and pass --token-env only to name another variable."
    )


def _write(target: Path, source: str) -> str | None:
    """Write ``source`` to ``target`` whole (through a partial file); the failure's message, or None."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        partial.write_text(source, encoding="utf-8")
        partial.replace(target)
    except OSError as exc:
        return f"cannot write {target}: {exc.strerror or exc}"
    return None


if __name__ == "__main__":
    sys.exit(main())
