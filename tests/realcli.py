"""The real Pulumi CLI, driven as a user drives it, for the real-engine tier.

``pulumi_bin()`` finds the CLI: the pinned build in ``.tools/`` (``make cli`` makes it), else a ``pulumi`` on
PATH. Without one the tier skips, except under ``CI=true``, where it fails: CI must never pass by skipping it.

``Project`` copies a Pulumi project (the root stack or an example) into a temporary folder and gives it a
stack of its own on a file backend there, so tests never write into the checkout and never share state. The
copy is the project as committed; only the stack's config (``Pulumi.<stack>.yaml``, what ``pulumi config set``
writes) is added, against the sandbox the test passes in.
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

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PROGRAMS = Path(__file__).resolve().parent / "programs"
VENV = ROOT / ".venv"
PASSPHRASE = "oppie-tests"
PHONE_AGENT = "pulumi-python:dynamic/oppie:PhoneAgent"
# What the CLI's output shows for each step, e.g. "+ 2 to create" / "~ 1 updated".
_SUMMARY = re.compile(
    r"^\s*(\+-|[+~\-])\s*(\d+)\s+(to create|to update|to delete|to replace|created|updated|"
    r"deleted|replaced)\s*$",
    re.MULTILINE,
)


def _pinned_version() -> str:
    for line in (ROOT / "tools" / "pulumi" / "go.mod").read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["github.com/pulumi/pulumi/pkg/v3"]:
            return parts[1]
    raise AssertionError("tools/pulumi/go.mod pins no github.com/pulumi/pulumi/pkg/v3")


def pulumi_bin() -> Path:
    """The folder holding the ``pulumi`` CLI this tier runs; skips (fails under CI) when there is none."""
    pinned = ROOT / ".tools" / f"pulumi-{_pinned_version()}" / "bin"
    if (pinned / ".complete").exists():
        return pinned
    found = shutil.which("pulumi")
    if found:
        return Path(found).parent
    reason = "no Pulumi CLI: run `make cli` (builds it with Go) or install one on PATH"
    if os.environ.get("CI") == "true":
        pytest.fail(f"the real-engine tier cannot run under CI: {reason}")
    pytest.skip(reason)


def cli_env(bin_dir: Path, home: Path, backend: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of one CLI run: our CLI first on PATH, a private PULUMI_HOME and file backend.

    ``OPPIE_*`` variables of the caller are dropped, so a test sees only the configuration it sets.
    ``PULUMI_PYTHON_CMD`` is the project's virtualenv: the examples declare no virtualenv (a user activates
    one), and the root stack's ``.venv`` is linked into its copy.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OPPIE_", "PULUMI_"))}
    env.update(
        {
            "PATH": os.pathsep.join([str(bin_dir), str(VENV / "bin"), env.get("PATH", "")]),
            "PULUMI_HOME": str(home),
            "PULUMI_BACKEND_URL": f"file://{backend}",
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_PYTHON_CMD": str(VENV / "bin" / "python"),
            "NO_COLOR": "1",
        }
    )
    env.update(extra or {})
    return env


class CliError(AssertionError):
    """A CLI run that exited otherwise than the test expected; carries its whole output."""


class Project:
    """A copy of a Pulumi project with its own stack, run by the real CLI."""

    def __init__(
        self,
        source: Path,
        tmp: Path,
        *,
        files: Iterable[str] | None = None,
        stack: str = "test",
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.bin = pulumi_bin()
        self.dir = tmp / "project"
        if files is None:
            shutil.copytree(
                source, self.dir, ignore=shutil.ignore_patterns(".venv", "venv", "__pycache__", "Pulumi.*.yaml")
            )
        else:
            self.dir.mkdir(parents=True)
            for name in files:
                shutil.copy2(source / name, self.dir / name)
        if (source / ".venv").exists() or source == ROOT:
            # The root stack names `virtualenv: .venv`: the copy shares the checkout's.
            (self.dir / ".venv").symlink_to(VENV)
        (tmp / "state").mkdir()
        (tmp / "home").mkdir()
        self.stack = stack
        self.env = cli_env(self.bin, tmp / "home", tmp / "state", env)
        self.run("stack", "init")

    @classmethod
    def root(cls, tmp: Path, **kwargs: Any) -> Project:
        """The root stack: ``Pulumi.yaml`` and ``__main__.py`` of the checkout."""
        return cls(ROOT, tmp, files=["Pulumi.yaml", "__main__.py"], **kwargs)

    @classmethod
    def example(cls, name: str, tmp: Path, **kwargs: Any) -> Project:
        return cls(EXAMPLES / name, tmp, **kwargs)

    @classmethod
    def program(cls, tmp: Path, **kwargs: Any) -> Project:
        """The tier's own program (tests/programs/agents): it declares what ``declare`` writes."""
        return cls(PROGRAMS / "agents", tmp, **kwargs)

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
