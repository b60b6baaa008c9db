"""``drift.torn``: which attribute files of a file backend ``recover`` removes, and which it never touches.

The real-CLI side (a stack the CLI cannot read, mended, then recovered): tests/test_real_interrupted.py.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from oppie_pulumi.drift.stacks import StackRef, failure
from oppie_pulumi.drift.torn import mend

WHOLE = b'{"user.cache_control":"","user.content_type":"application/octet-stream"}\n'


class Whoami:
    """A ``pulumi`` that answers ``whoami --json`` with ``url``, and records what it was asked."""

    def __init__(self, url: str, returncode: int = 0) -> None:
        self.url, self.returncode = url, returncode
        self.asked: list[list[str]] = []

    def __call__(self, args: Sequence[str], folder: Path) -> subprocess.CompletedProcess[str]:
        self.asked.append(list(args))
        return subprocess.CompletedProcess(list(args), self.returncode, json.dumps({"user": "ci", "url": self.url}), "")


def project(tmp_path: Path, name: str = "agents") -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "Pulumi.yaml").write_text(f"name: {name}\nruntime: python\n")
    return folder


def stacks(tmp_path: Path, *parts: str) -> Path:
    folder = tmp_path.joinpath("state", ".pulumi", "stacks", *parts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.parametrize("torn", [b"", b'{"user.content_type":"appl'], ids=["empty", "cut short"])
def test_a_torn_attribute_file_of_the_stacks_checkpoint_is_removed_and_the_state_kept(
    tmp_path: Path, torn: bytes
) -> None:
    folder = stacks(tmp_path, "agents")
    (folder / "dev.json").write_text("{}")
    (folder / "dev.json.attrs").write_bytes(torn)
    (folder / "dev.json.bak.attrs").write_bytes(torn)  # not read by any command: left as it is

    mended = mend(StackRef("dev", project(tmp_path)), Whoami(f"file://{tmp_path / 'state'}"))

    assert mended == [folder / "dev.json.attrs"]
    assert sorted(p.name for p in folder.iterdir()) == ["dev.json", "dev.json.bak.attrs"]


def test_a_whole_attribute_file_and_other_stacks_and_projects_are_never_touched(tmp_path: Path) -> None:
    mine, theirs = stacks(tmp_path, "agents"), stacks(tmp_path, "billing")
    (mine / "dev.json.attrs").write_bytes(WHOLE)
    (mine / "prod.json.attrs").write_bytes(b"")
    (theirs / "dev.json.attrs").write_bytes(b"")

    assert mend(StackRef("dev", project(tmp_path)), Whoami(f"file://{tmp_path / 'state'}")) == []
    assert (mine / "dev.json.attrs").read_bytes() == WHOLE
    assert (mine / "prod.json.attrs").exists() and (theirs / "dev.json.attrs").exists()


def test_the_gzipped_and_the_unscoped_layouts_and_a_qualified_stack_name(tmp_path: Path) -> None:
    scoped, legacy = stacks(tmp_path, "billing"), stacks(tmp_path)
    (scoped / "dev.json.gz.attrs").write_bytes(b"")
    (legacy / "dev.json.attrs").write_bytes(b"")

    # organization/billing/dev names its project: Pulumi.yaml's (agents) is not the one asked for.
    mended = mend(StackRef("organization/billing/dev", project(tmp_path)), Whoami(f"file://{tmp_path / 'state'}"))

    assert mended == [scoped / "dev.json.gz.attrs", legacy / "dev.json.attrs"]


@pytest.mark.parametrize(
    ("url", "returncode"),
    [("https://api.pulumi.com", 0), ("s3://bucket/state", 0), ("file:///elsewhere", 1)],
    ids=["Pulumi Cloud", "S3", "whoami failed"],
)
def test_other_backends_are_left_alone(tmp_path: Path, url: str, returncode: int) -> None:
    folder = stacks(tmp_path, "agents")
    (folder / "dev.json.attrs").write_bytes(b"")
    run = Whoami(url.replace("/elsewhere", str(tmp_path / "state")), returncode)

    assert mend(StackRef("dev", project(tmp_path)), run) == []
    assert (folder / "dev.json.attrs").exists()
    assert run.asked == [["whoami", "--json"]], "only whoami, which reads no state"


def test_a_backend_under_the_home_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    folder = stacks(tmp_path, "agents")
    (folder / "dev.json.attrs").write_bytes(b"")

    assert mend(StackRef("dev", project(tmp_path)), Whoami("file://~/state")) == [folder / "dev.json.attrs"]


def test_a_state_no_command_can_read_is_reported_with_what_mends_it() -> None:
    result = subprocess.CompletedProcess(["pulumi"], 255, "", "error: failed to load checkpoint: EOF\n")

    assert failure("stack export --stack dev", result) == (
        "`pulumi stack export --stack dev` exited 255: error: failed to load checkpoint: EOF (if a command on this "
        "stack was killed, `oppie-pulumi recover` mends the state)"
    )
