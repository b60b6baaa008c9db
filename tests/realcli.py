"""The real Pulumi CLI for the real-engine tier: the harness's ``Project``, on the checkout's CLI and virtualenv.

``pulumi_bin()`` finds the CLI: the pinned build in ``.tools/`` (``make cli`` makes it), else a ``pulumi`` on
PATH. Without one the tier skips, except under ``CI=true``, where it fails: CI must never pass by skipping it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
from oppie_pulumi_testing import cli
from oppie_pulumi_testing.cli import PHONE_AGENT, CliError, cli_env, summary

__all__ = [
    "EXAMPLES",
    "PHONE_AGENT",
    "PROGRAMS",
    "ROOT",
    "VENV",
    "CliError",
    "Project",
    "cli_env",
    "pulumi_bin",
    "summary",
]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PROGRAMS = Path(__file__).resolve().parent / "programs"
VENV = ROOT / ".venv"


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


class Project(cli.Project):
    """A copy of a Pulumi project with its own stack, run by the checkout's CLI with the checkout's virtualenv."""

    def __init__(
        self,
        source: Path,
        tmp: Path,
        *,
        files: Iterable[str] | None = None,
        stack: str = "test",
        env: Mapping[str, str] | None = None,
    ) -> None:
        # The root stack names `virtualenv: .venv`: its copy shares the checkout's.
        virtualenv = VENV if (source / ".venv").exists() or source == ROOT else None
        super().__init__(
            source,
            tmp,
            bin_dir=pulumi_bin(),
            python=VENV / "bin" / "python",
            files=files,
            stack=stack,
            env=env,
            virtualenv=virtualenv,
        )

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
