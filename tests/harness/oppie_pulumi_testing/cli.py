"""The real Pulumi CLI, driven as a user drives it.

``Project`` copies a Pulumi project (a stack's program, an example) into a temporary folder and gives it a stack
of its own on a file backend there, so runs never write into the source and never share state. The copy is the
project as given; only the stack's config (``Pulumi.<stack>.yaml``, what ``pulumi config set`` writes) is added.

The caller says which CLI (``bin_dir``: the folder holding ``pulumi``) and which Python runs the programs
(``python``: a virtualenv's interpreter with oppie-pulumi installed).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["PASSPHRASE", "PHONE_AGENT", "CliError", "Project", "cli_env", "summary"]

PASSPHRASE = "oppie-tests"
PHONE_AGENT = "pulumi-python:dynamic/oppie:PhoneAgent"
# What the CLI's output shows for each step, e.g. "+ 2 to create" / "~ 1 updated".
_SUMMARY = re.compile(
    r"^\s*(\+-|[+~\-])\s*(\d+)\s+(to create|to update|to delete|to replace|created|updated|"
    r"deleted|replaced)\s*$",
    re.MULTILINE,
)


def cli_env(
    bin_dir: Path, python: Path, home: Path, backend: Path, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of one CLI run: the CLI first on PATH, a private PULUMI_HOME and file backend.

    ``OPPIE_*`` and ``PULUMI_*`` variables of the caller are dropped, so a run sees only the configuration it
    sets. ``PULUMI_PYTHON_CMD`` is ``python``: the examples declare no virtualenv (a user activates one).
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OPPIE_", "PULUMI_"))}
    env.update(
        {
            "PATH": os.pathsep.join([str(bin_dir), str(python.parent), env.get("PATH", "")]),
            "PULUMI_HOME": str(home),
            "PULUMI_BACKEND_URL": f"file://{backend}",
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_PYTHON_CMD": str(python),
            "NO_COLOR": "1",
        }
    )
    env.update(extra or {})
    return env


class CliError(AssertionError):
    """A CLI run that exited otherwise than expected; carries its whole output."""


class Project:
    """A copy of a Pulumi project with its own stack, run by the real CLI."""

    def __init__(
        self,
        source: Path,
        tmp: Path,
        *,
        bin_dir: Path,
        python: Path,
        files: Iterable[str] | None = None,
        stack: str = "test",
        env: Mapping[str, str] | None = None,
        virtualenv: Path | None = None,
    ) -> None:
        self.bin = bin_dir
        self.python = python
        self.dir = tmp / "project"
        if files is None:
            shutil.copytree(
                source, self.dir, ignore=shutil.ignore_patterns(".venv", "venv", "__pycache__", "Pulumi.*.yaml")
            )
        else:
            self.dir.mkdir(parents=True)
            for name in files:
                shutil.copy2(source / name, self.dir / name)
        if virtualenv is not None:
            # A project that names `virtualenv: .venv` shares the caller's.
            (self.dir / ".venv").symlink_to(virtualenv)
        (tmp / "state").mkdir()
        (tmp / "home").mkdir()
        self.stack = stack
        self.env = cli_env(self.bin, python, tmp / "home", tmp / "state", env)
        self.run("stack", "init")

    def declare(self, agents: Mapping[str, Any], **more: Any) -> None:
        """Write the program's ``agents.json``: ``{name: {"args", "refs", "opts"}}`` plus ``gets``, ``secret_args``."""
        (self.dir / "agents.json").write_text(json.dumps({"agents": dict(agents), **more}))

    def command(self, *args: str) -> list[str]:
        # Flags before a "--", after which everything is a value.
        split = args.index("--") if "--" in args else len(args)
        return [str(self.bin / "pulumi"), *args[:split], "--stack", self.stack, "--non-interactive", *args[split:]]

    def run(
        self, *args: str, expect: int | None = 0, timeout: float = 300, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``pulumi <args> --stack <stack> --non-interactive``; fails unless it exits ``expect`` (None: any)."""
        result = subprocess.run(
            self.command(*args),
            cwd=self.dir,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if expect is not None and result.returncode != expect:
            raise CliError(
                f"`pulumi {' '.join(args)}` exited {result.returncode}, expected {expect}\n"
                f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
            )
        return result

    def start(self, *args: str) -> subprocess.Popen[str]:
        """``pulumi <args>`` in the background, in a process group of its own (so a kill takes its children)."""
        return subprocess.Popen(
            self.command(*args),
            cwd=self.dir,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    @staticmethod
    def kill(process: subprocess.Popen[str]) -> str:
        """SIGKILL the CLI and everything it started; returns what it printed."""
        os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate(timeout=30)
        return out

    def oppie(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``oppie-pulumi <args>`` (from the programs' virtualenv) in the project's folder, with its CLI, backend
        and ``PULUMI_HOME``, as a user runs it beside ``pulumi``; any exit status."""
        return subprocess.run(
            [str(self.python.parent / "oppie-pulumi"), *args],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def configure(self, sandbox_url: str, token: str, **config: str) -> None:
        """Point the stack at a sandbox: ``oppie:baseUrl``, the token as a secret, and any other keys."""
        self.config_set("oppie:baseUrl", sandbox_url)
        self.config_set("oppie:apiToken", token, secret=True)
        for key, value in config.items():
            self.config_set(key, value)

    def config_set(self, key: str, value: str, *, secret: bool = False) -> None:
        # After `--`, so a value starting with "-" is not taken for a flag.
        self.run("config", "set", *(["--secret"] if secret else ["--plaintext"]), key, "--", value)

    def up(self, *args: str, expect: int | None = 0) -> subprocess.CompletedProcess[str]:
        return self.run("up", "--yes", "--skip-preview", *args, expect=expect)

    def outputs(self) -> dict[str, Any]:
        result = self.run("stack", "output", "--json", "--show-secrets")
        return dict(json.loads(result.stdout))

    def export(self) -> dict[str, Any]:
        return dict(json.loads(self.run("stack", "export").stdout))

    def resources(self, type_: str = PHONE_AGENT) -> dict[str, dict[str, Any]]:
        """The state's resources of ``type_`` by logical name, as ``pulumi stack export`` shows them."""
        deployment = self.export()["deployment"]
        return {res["urn"].rsplit("::", 1)[1]: res for res in deployment.get("resources") or [] if res["type"] == type_}

    def destroy(self) -> subprocess.CompletedProcess[str]:
        return self.run("destroy", "--yes", "--skip-preview")


def summary(output: str) -> dict[str, int]:
    """``{"to create": 2, ...}`` from the "Resources:" block a CLI run prints."""
    return {kind: int(count) for _, count, kind in _SUMMARY.findall(output)}
