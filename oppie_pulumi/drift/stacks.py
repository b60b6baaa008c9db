"""Reading the stacks a drift review covers: their phone agents as the state holds them, and their settings.

State comes from the Pulumi CLI the user runs (``pulumi stack export --show-secrets``), so any backend the user
is logged into works and secrets are decrypted as Pulumi decrypts them; the review never writes state and never
takes a stack's lock (an export takes none). Both resource types are read: the dynamic
``pulumi-python:dynamic/oppie:PhoneAgent`` (``_models``' names) and the plugin's ``oppie:index:PhoneAgent`` (the
schema's camelCase names, converted here). A value Pulumi keeps as a secret is decrypted for the comparison and
remembered as secret, so that no report ever shows it.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._config import SOURCES, Settings
from .._exceptions import ConfigError

__all__ = ["DYNAMIC_TYPE", "PLUGIN_TYPE", "Managed", "Pending", "StackRef", "StackState", "parse_deployment", "read"]

DYNAMIC_TYPE = "pulumi-python:dynamic/oppie:PhoneAgent"
PLUGIN_TYPE = "oppie:index:PhoneAgent"
# How Pulumi marks a secret in an exported state: {SIG: SECRET_SIG, "plaintext": json} (or "ciphertext").
SECRET_SIG = ("4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270")
# A command that takes longer than this is stuck (a backend that does not answer).
COMMAND_TIMEOUT = 300.0

Run = Callable[[Sequence[str], Path], "subprocess.CompletedProcess[str]"]


@dataclass(frozen=True)
class StackRef:
    """A stack to review: its name (``dev``, ``org/project/dev``) and the folder of its Pulumi project."""

    name: str
    dir: Path

    @classmethod
    def parse(cls, text: str, default_dir: Path) -> StackRef:
        """``dev`` (in ``default_dir``) or ``path/to/project:dev``."""
        folder, sep, name = text.rpartition(":")
        return cls(name, Path(folder) if sep and folder else default_dir)

    @property
    def label(self) -> str:
        """How reports name the stack: as ``--stack`` takes it (``dev``, or ``path/to/project:dev``)."""
        return self.name if str(self.dir) in ("", ".") else f"{self.dir}:{self.name}"

    def __str__(self) -> str:
        return self.label


@dataclass
class Managed:
    """One phone agent resource of a stack, in ``_models``' names; ``secret`` names the values Pulumi keeps
    secret (never shown)."""

    stack: str
    urn: str
    type: str
    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    secret: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]

    @property
    def adapter(self) -> str:
        return "plugin" if self.type == PLUGIN_TYPE else "dynamic"


@dataclass
class Pending:
    """A create the engine began and never finished (a `pulumi up` killed after checkpointing it)."""

    stack: str
    urn: str
    type: str
    inputs: dict[str, Any]


@dataclass
class StackState:
    """What one stack holds, or why it could not be read."""

    ref: StackRef
    resources: list[Managed] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)
    settings: Settings | None = None
    error: str | None = None


def python_name(name: str) -> str:
    if name.startswith("_"):
        return name
    return "".join("_" + ch.lower() if ch.isupper() else ch for ch in name)


def _reveal(props: Mapping[str, Any], camel: bool) -> tuple[dict[str, Any], frozenset[str]]:
    """``props`` with secrets decrypted (as the export shows them) and names in ``_models``' style; and the
    names whose values were secret."""
    plain: dict[str, Any] = {}
    secret = set()
    for key, value in props.items():
        name = python_name(key) if camel else key
        if isinstance(value, dict) and value.get(SECRET_SIG[0]) == SECRET_SIG[1]:
            secret.add(name)
            value = json.loads(value["plaintext"]) if "plaintext" in value else None
        plain[name] = value
    return plain, frozenset(secret)


def parse_deployment(stack: str, exported: Mapping[str, Any]) -> tuple[list[Managed], list[Pending]]:
    """The phone agents (and pending creates of phone agents) of a ``pulumi stack export`` document."""
    deployment = exported.get("deployment") or {}
    managed: list[Managed] = []
    for res in deployment.get("resources") or []:
        type_ = res.get("type")
        if type_ not in (DYNAMIC_TYPE, PLUGIN_TYPE) or not res.get("custom", True) or not res.get("id"):
            continue
        camel = type_ == PLUGIN_TYPE
        inputs, secret_in = _reveal(res.get("inputs") or {}, camel)
        outputs, secret_out = _reveal(res.get("outputs") or {}, camel)
        managed.append(Managed(stack, res["urn"], type_, str(res["id"]), inputs, outputs, secret_in | secret_out))
    pending = []
    for operation in deployment.get("pending_operations") or []:
        res = operation.get("resource") or {}
        if operation.get("type") == "creating" and res.get("type") in (DYNAMIC_TYPE, PLUGIN_TYPE):
            inputs, _ = _reveal(res.get("inputs") or {}, res["type"] == PLUGIN_TYPE)
            pending.append(Pending(stack, res.get("urn", ""), res["type"], inputs))
    return managed, pending


def pulumi_cli(args: Sequence[str], folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["pulumi", *args, "--non-interactive"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
        env={**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true"},
    )


def failure(what: str, result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (result.stderr or result.stdout).strip().splitlines() if line.strip()]
    text = f"`pulumi {what}` exited {result.returncode}: {lines[-1] if lines else 'no output'}"
    if "failed to load checkpoint" in result.stderr + result.stdout:
        # What a command killed while a file backend wrote the state leaves (drift/torn.py): say what mends it.
        text += " (if a command on this stack was killed, `oppie-pulumi recover` mends the state)"
    return text


def read(ref: StackRef, run: Run = pulumi_cli, environ: Mapping[str, str] | None = None) -> StackState:
    """The stack's phone agents and the provider settings its config gives (config, then the environment)."""
    state = StackState(ref)
    if not ref.dir.is_dir():
        state.error = f"project folder {str(ref.dir)!r} does not exist"
        return state
    try:
        exported = run(["stack", "export", "--show-secrets", "--stack", ref.name], ref.dir)
    except (OSError, subprocess.TimeoutExpired) as exc:
        state.error = f"`pulumi stack export` could not run: {exc}"
        return state
    if exported.returncode != 0:
        state.error = failure(f"stack export --stack {ref.name}", exported)
        return state
    try:
        document = json.loads(exported.stdout)
        state.resources, state.pending = parse_deployment(ref.label, document)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        state.error = f"`pulumi stack export --stack {ref.name}` gave a state this review cannot read ({exc})"
        return state
    config = run(["config", "--json", "--show-secrets", "--stack", ref.name], ref.dir)
    values: dict[str, Any] = {}
    if config.returncode == 0:
        try:
            values = {key: entry.get("value") for key, entry in json.loads(config.stdout).items()}
        except (ValueError, AttributeError):
            values = {}
    known = {source.key for source in SOURCES.values()}
    try:
        state.settings = Settings.resolve({k: v for k, v in values.items() if k in known}.get, environ)
    except ConfigError as exc:
        state.error = f"stack {ref.name}: {exc}"
    return state
