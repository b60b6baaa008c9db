"""``make up``, ``make preview``, ``make refresh`` and ``make down`` from the checkout, as a user runs them.

Every setting that would collide with another run is a Makefile variable given on the command line: the
sandbox's port and folder (``SANDBOX_PORT``, ``SANDBOX_DIR``), the stack (``STACK``) and the state
(``PULUMI_BACKEND_URL``). ``PULUMI_HOME`` (where ``pulumi stack select`` records the current stack) is a
temporary folder too. PATH starts with the CLI ``realcli.pulumi_bin()`` finds, so ``tools/pulumi/install.sh``
picks that one. What the Makefile writes into the checkout, ``Pulumi.<STACK>.yaml``, is removed afterwards.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from oppie_pulumi.sandbox import SandboxConfig, serve

from .realcli import ROOT, pulumi_bin, summary

pytestmark = pytest.mark.realcli

SANDBOX_TOKEN = "sandbox-token"  # the Makefile's default SANDBOX_TOKEN
RESERVED_PORT = 8787  # the Makefile's default port: another sandbox may be serving on it
OUTPUT_LINE = re.compile(r'^\s+(\w+)\s*: "([^"]*)"$', re.MULTILINE)


def _free_port() -> int:
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if port != RESERVED_PORT:
            return port


class Make:
    """``make <target>`` in the checkout with this run's variables."""

    def __init__(self, tmp: Path) -> None:
        self.port = _free_port()
        self.stack = f"make-test-{uuid.uuid4().hex[:8]}"
        self.sandbox_dir = tmp / "sandbox"
        self.variables = [
            f"SANDBOX_PORT={self.port}",
            f"SANDBOX_DIR={self.sandbox_dir}",
            f"STACK={self.stack}",
            f"PULUMI_BACKEND_URL=file://{tmp / 'state'}",
        ]
        (tmp / "state").mkdir()
        (tmp / "home").mkdir()
        # A shell's environment, without the caller's Pulumi/oppie settings or an enclosing make's flags
        # (`make test` runs pytest).
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("OPPIE_", "PULUMI_")) and key not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}
        }
        self.env["PATH"] = os.pathsep.join([str(pulumi_bin()), self.env.get("PATH", "")])
        self.env["PULUMI_HOME"] = str(tmp / "home")
        self.url = f"http://127.0.0.1:{self.port}"

    def __call__(self, target: str, *, status: int = 0) -> subprocess.CompletedProcess[str]:
        """Run ``make <target>``; fails the test unless it exits ``status``."""
        result = subprocess.run(
            # --old-file: `up` and the others depend on `setup`, which would reinstall the shared .venv if
            # pyproject.toml were newer than it; the virtualenv is not this test's to rebuild.
            ["make", "--no-print-directory", f"--old-file={ROOT / '.venv/bin/.installed'}", target, *self.variables],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == status, (
            f"`make {target}` exited {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
        return result

    def agents(self) -> list[dict[str, Any]]:
        """What the running sandbox lists, over HTTP as any client sees it."""
        answer = httpx.get(f"{self.url}/phone", headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"}, timeout=10)
        assert answer.status_code == 200, answer.text
        agents: list[dict[str, Any]] = answer.json()
        return agents

    def stop_sandbox(self) -> None:
        """Stop the sandbox `make up` started (by the pid it recorded), if it still runs."""
        pid_file = self.sandbox_dir / "sandbox.pid"
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
            except ProcessLookupError:
                pass


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Make]:
    runner = Make(tmp_path)
    try:
        yield runner
    finally:
        runner.stop_sandbox()
        (ROOT / f"Pulumi.{runner.stack}.yaml").unlink(missing_ok=True)


def test_make_up_preview_refresh_down_deploy_rest_and_remove_the_root_stack(make: Make) -> None:
    up = make("up")
    agents = {agent["name"]: agent for agent in make.agents()}
    assert sorted(agents) == ["Acme delivery follow-up", "Acme support line"]
    support, follow_up = agents["Acme support line"], agents["Acme delivery follow-up"]
    # `pulumi up` ends with the stack's outputs: the four exports of __main__.py, as deployed.
    outputs = dict(OUTPUT_LINE.findall(up.stdout.rsplit("Outputs:", 1)[-1]))
    assert outputs == {
        "support_line_id": support["id"],
        "support_line_number": support["phone_number"],
        "follow_up_id": follow_up["id"],
        "follow_up_number": follow_up["phone_number"],
    }, up.stdout
    assert summary(up.stdout) == {"to create": 3, "created": 3}, up.stdout

    preview = make("preview")
    assert summary(preview.stdout) == {}, preview.stdout
    assert "3 unchanged" in preview.stdout

    # A dashboard edit: `make refresh` reads it from the API (with the stack's config, --run-program).
    edited = httpx.patch(
        f"{make.url}/phone/{support['id']}",
        json={"first_message": "Edited in the dashboard"},
        headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"},
        timeout=10,
    )
    assert edited.status_code == 200, edited.text
    refresh = make("refresh")
    assert summary(refresh.stdout) == {"to update": 1, "updated": 1}, refresh.stdout
    assert "[diff: ~first_message]" in refresh.stdout
    assert len(make.agents()) == 2, "a refresh must not change the agents"

    down = make("down")
    assert summary(down.stdout) == {"to delete": 3, "deleted": 3}, down.stdout
    assert "sandbox stopped" in down.stdout
    assert not (make.sandbox_dir / "sandbox.pid").exists()
    # The sandbox is gone with `make down`: a new one on its database shows what is left.
    with serve(SandboxConfig(token=SANDBOX_TOKEN, db_path=str(make.sandbox_dir / "agents.db"))) as restarted:
        assert restarted.agents() == [], "make down must leave no agent"


def test_make_sandbox_beside_a_running_sandbox_says_one_is_there_and_how_to_stop_it(make: Make) -> None:
    make("sandbox-start")
    again = make("sandbox-start")
    assert "sandbox already running" in again.stdout
    foreground = make("sandbox", status=2)
    assert f"already listens on {make.url}" in foreground.stdout
    assert "make sandbox-stop" in foreground.stdout
    assert "Address already in use" not in foreground.stdout + foreground.stderr
    make.agents()  # the running one is left alone
