"""Drive stacks of ``PhoneAgent`` the way the Pulumi engine does, without the Pulumi CLI.

- ``run_program`` runs a Pulumi program under Pulumi's own mock monitor and returns what it
  registered (type, name and inputs, exactly as the engine would receive them).
- ``ProviderHost`` starts the real dynamic provider host (``python -m pulumi.dynamic``) and speaks the
  ResourceProvider gRPC protocol to it: Configure, Check, Diff, Create, Read, Update, Delete.
- ``Engine`` plays the engine's part on top of the two: ``preview``, ``up``, ``refresh`` and
  ``destroy`` over an in-memory state, with the call order and the olds/news the real engine passes:
  Check against the prior inputs, Diff against the prior outputs, Check again *without* olds before a
  replacement, create-before-delete replacement, a refresh judged by Diff of the refreshed outputs
  against the prior inputs, unknowns delivered the way the host delivers them. Use one ``Engine`` (one
  host) per command, as the CLI starts one provider host per command.

  What it does not model (the real-engine tier, tests/test_real_*.py, covers it with the CLI): the
  engine's handling of resource options (protect, ignore_changes, delete_before_replace, targets),
  default-provider config kept in state, pending operations, secrets re-marked on outputs, and the
  display. tests/test_engine_differential.py runs one scenario through both and compares them.

The project's tests, examples check and benchmarks use these; they are public (in the oppie-pulumi-testing
distribution, not in oppie-pulumi's wheel) so that teams can test their own stacks the same way in CI.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import grpc
import pulumi
from pulumi.runtime import proto, rpc
from pulumi.runtime.proto import provider_pb2_grpc

__all__ = [
    "Engine",
    "HostError",
    "ProviderHost",
    "Registration",
    "StateEntry",
    "Summary",
    "as_sent_to_provider",
    "run_program",
]

PROVIDER_KEY = "__provider"


@dataclass
class Registration:
    """One resource a program registered: its type token, logical name and inputs."""

    type: str
    name: str
    inputs: dict[str, Any]
    id: str | None = None  # the id a lookup (``PhoneAgent.get``) reads; None for a resource to manage

    @property
    def urn(self) -> str:
        return f"urn:pulumi:test::oppie::{self.type}::{self.name}"


def run_program(
    program: Callable[[], Any],
    *,
    project: str = "oppie",
    stack: str = "test",
    config: Mapping[str, str] | None = None,
    secret_keys: Iterable[str] = (),
) -> list[Registration]:
    """Run ``program`` under Pulumi's mock monitor and return what it registered, in order.

    ``config`` holds stack config (``{"project:key": "value"}``) for ``pulumi.Config`` in the program.
    """
    captured: list[Registration] = []
    lock = threading.Lock()

    class _Capture(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
            with lock:
                captured.append(Registration(args.typ, args.name, dict(args.inputs), args.resource_id or None))
            return f"{args.name}-mock-id", dict(args.inputs)

        def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
            return {}, None

    pulumi.runtime.set_mocks(_Capture(), project=project, stack=stack, preview=False)
    pulumi.runtime.set_all_config(dict(config or {}), list(secret_keys))

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def _run() -> Any:
        program()
        return None

    _run()
    return captured


class HostError(Exception):
    """A provider operation failed in the host; ``message`` is the provider's error, ``details`` all of it."""

    def __init__(self, operation: str, details: str) -> None:
        lines = [line for line in details.strip().splitlines() if line.strip()]
        self.operation = operation
        self.details = details
        self.message = lines[-1] if lines else details
        super().__init__(f"{operation}: {self.message}")


def _serialize(props: Mapping[str, Any]) -> Any:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(rpc.serialize_properties(dict(props), {}))
    finally:
        loop.close()


def as_sent_to_provider(value: Any) -> Any:
    """``value`` with secret markers removed, as the engine sends inputs to the dynamic provider host.

    The host answers Configure with ``acceptSecrets: False``, so the engine strips secrets before Check
    and Create and marks the same-named outputs secret again afterwards.
    """
    if rpc.is_rpc_secret(value):
        return as_sent_to_provider(rpc.unwrap_rpc_secret(value))
    if isinstance(value, list):
        return [as_sent_to_provider(item) for item in value]
    if isinstance(value, dict):
        return {key: as_sent_to_provider(item) for key, item in value.items()}
    return value


def _deserialize(struct: Any) -> dict[str, Any]:
    return dict(rpc.deserialize_properties(struct, True) or {})


class ProviderHost:
    """The real ``python -m pulumi.dynamic`` provider host, over gRPC.

    ``env`` replaces the host process's environment (default: ours without ``OPPIE_*`` variables, so
    that a test sees only the configuration it passes).
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        if env is None:
            env = {k: v for k, v in os.environ.items() if not k.startswith("OPPIE_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pulumi.dynamic"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode().strip()
        if not line.isdigit():
            self.process.kill()
            _, err = self.process.communicate(timeout=10)
            raise RuntimeError(f"provider host did not start: {line!r} {err.decode()[-2000:]}")
        self.port = int(line)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)

    def __enter__(self) -> ProviderHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the host process and return what it wrote to stderr."""
        self.channel.close()
        if self.process.poll() is None:
            self.process.kill()
        _, err = self.process.communicate(timeout=10)
        self.stderr = err.decode(errors="replace")

    def _rpc(self, operation: str, method: Callable[[Any], Any], request: Any) -> Any:
        try:
            return method(request)
        except grpc.RpcError as exc:
            raise HostError(operation, exc.details() or str(exc)) from None

    def configure(self, config: Mapping[str, str], secret_keys: Iterable[str] = ("oppie:apiToken",)) -> None:
        """Send the stack's config as the engine does: every key, namespaced, secrets wrapped."""
        secrets = set(secret_keys)
        args = {k: rpc.wrap_rpc_secret(v) if k in secrets else v for k, v in config.items()}
        self._rpc(
            "configure",
            self.stub.Configure,
            proto.ConfigureRequest(args=_serialize(args), acceptSecrets=True, acceptResources=True),
        )

    def check(
        self, urn: str, olds: Mapping[str, Any], news: Mapping[str, Any]
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """Check: returns the checked inputs and ``(property, reason)`` failures."""
        response = self._rpc(
            "check",
            self.stub.Check,
            proto.CheckRequest(urn=urn, olds=_serialize(olds), news=_serialize(news)),
        )
        return _deserialize(response.inputs), [(f.property, f.reason) for f in response.failures]

    def diff(self, id_: str, urn: str, olds: Mapping[str, Any], news: Mapping[str, Any]) -> tuple[bool, list[str]]:
        """Diff: returns ``(changes, replaces)``."""
        response = self._rpc(
            "diff",
            self.stub.Diff,
            proto.DiffRequest(id=id_, urn=urn, olds=_serialize(olds), news=_serialize(news)),
        )
        return response.changes == proto.DiffResponse.DIFF_SOME, list(response.replaces)

    def create(self, urn: str, props: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        response = self._rpc("create", self.stub.Create, proto.CreateRequest(urn=urn, properties=_serialize(props)))
        return response.id, _deserialize(response.properties)

    def read(
        self, id_: str, urn: str, props: Mapping[str, Any], inputs: Mapping[str, Any]
    ) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """Read: returns ``(id, outputs, inputs)``; an empty id means the resource is gone."""
        response = self._rpc(
            "read",
            self.stub.Read,
            proto.ReadRequest(id=id_, urn=urn, properties=_serialize(props), inputs=_serialize(inputs)),
        )
        return response.id, _deserialize(response.properties), _deserialize(response.inputs)

    def update(self, id_: str, urn: str, olds: Mapping[str, Any], news: Mapping[str, Any]) -> dict[str, Any]:
        response = self._rpc(
            "update",
            self.stub.Update,
            proto.UpdateRequest(id=id_, urn=urn, olds=_serialize(olds), news=_serialize(news)),
        )
        return _deserialize(response.properties)

    def delete(self, id_: str, urn: str, props: Mapping[str, Any]) -> None:
        self._rpc("delete", self.stub.Delete, proto.DeleteRequest(id=id_, urn=urn, properties=_serialize(props)))


@dataclass
class StateEntry:
    """One resource in the state: what ``pulumi stack export`` would show for it."""

    urn: str
    type: str
    name: str
    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]


@dataclass
class Summary:
    """What an operation did (or, in a preview, would do), by logical name."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    same: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    check_failures: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    @property
    def changes(self) -> int:
        return len(self.created) + len(self.updated) + len(self.replaced) + len(self.deleted)


class Engine:
    """The engine's side of ``pulumi preview/up/refresh/destroy`` against one provider host.

    ``parallel`` is how many resource operations run at once (the CLI's ``--parallel``).
    """

    def __init__(self, host: ProviderHost, state: dict[str, StateEntry] | None = None, parallel: int = 4) -> None:
        self.host = host
        self.state: dict[str, StateEntry] = state if state is not None else {}
        self.parallel = parallel
        self._lock = threading.Lock()

    def _each(self, items: Iterable[Any], step: Callable[[Any], None]) -> None:
        with ThreadPoolExecutor(max_workers=self.parallel) as pool:
            for future in [pool.submit(step, item) for item in items]:
                future.result()

    def preview(self, registrations: list[Registration]) -> Summary:
        """Check and Diff every resource; nothing is created, updated or deleted."""
        return self.up(registrations, preview=True)

    def up(self, registrations: list[Registration], *, preview: bool = False) -> Summary:
        """Bring the state to the program: create, update, replace, and delete what is gone from it."""
        summary = Summary()
        wanted = {reg.urn for reg in registrations}

        def step(reg: Registration) -> None:
            old = self.state.get(reg.urn)
            try:
                news = as_sent_to_provider(reg.inputs)
                inputs, failures = self.host.check(reg.urn, old.inputs if old else {}, news)
                if failures:
                    with self._lock:
                        summary.check_failures[reg.name] = failures
                    return
                if old is None:
                    if not preview:
                        id_, outs = self.host.create(reg.urn, inputs)
                        self._put(StateEntry(reg.urn, reg.type, reg.name, id_, inputs, outs))
                    with self._lock:
                        summary.created.append(reg.name)
                    return
                changes, replaces = self.host.diff(old.id, reg.urn, old.outputs, inputs)
                if replaces:
                    # The engine re-runs Check with the new inputs only before a replacement, "to recompute the
                    # default values" (pkg/resource/deploy/step_generator.go): create-time inputs come back.
                    inputs, failures = self.host.check(reg.urn, {}, news)
                    if failures:
                        with self._lock:
                            summary.check_failures[reg.name] = failures
                        return
                    if not preview:
                        # Create before delete, the engine's default for a replacement.
                        id_, outs = self.host.create(reg.urn, inputs)
                        self._put(StateEntry(reg.urn, reg.type, reg.name, id_, inputs, outs))
                        self.host.delete(old.id, reg.urn, old.outputs)
                    with self._lock:
                        summary.replaced.append(reg.name)
                elif changes:
                    if not preview:
                        outs = self.host.update(old.id, reg.urn, old.outputs, inputs)
                        self._put(StateEntry(reg.urn, reg.type, reg.name, old.id, inputs, outs))
                    with self._lock:
                        summary.updated.append(reg.name)
                else:
                    with self._lock:
                        summary.same.append(reg.name)
            except HostError as exc:
                with self._lock:
                    summary.failed[reg.name] = exc.message

        self._each(registrations, step)
        self._each([e for urn, e in list(self.state.items()) if urn not in wanted], self._deleter(summary, preview))
        return summary

    def refresh(self) -> Summary:
        """Read every resource: outputs and inputs follow the live agent; a vanished one drops out."""
        summary = Summary()

        def step(entry: StateEntry) -> None:
            try:
                id_, outs, inputs = self.host.read(entry.id, entry.urn, entry.outputs, entry.inputs)
            except HostError as exc:
                with self._lock:
                    summary.failed[entry.name] = exc.message
                return
            if not id_:
                with self._lock:
                    del self.state[entry.urn]
                    summary.deleted.append(entry.name)
                return
            new = StateEntry(entry.urn, entry.type, entry.name, id_, inputs or entry.inputs, outs)
            # The engine decides 'update' or 'same' by the provider's Diff of the refreshed outputs against the
            # old inputs (the diff an `up` of an unchanged program would see, inverted), not by comparing states.
            try:
                changed, _ = self.host.diff(id_, entry.urn, new.outputs, entry.inputs)
            except HostError as exc:
                with self._lock:
                    summary.failed[entry.name] = exc.message
                return
            with self._lock:
                (summary.updated if changed else summary.same).append(entry.name)
                self.state[entry.urn] = new

        self._each(list(self.state.values()), step)
        return summary

    def destroy(self) -> Summary:
        """Delete every resource in the state."""
        summary = Summary()
        self._each(list(self.state.values()), self._deleter(summary, False))
        return summary

    def _deleter(self, summary: Summary, preview: bool) -> Callable[[StateEntry], None]:
        def step(entry: StateEntry) -> None:
            try:
                if not preview:
                    self.host.delete(entry.id, entry.urn, entry.outputs)
                    with self._lock:
                        self.state.pop(entry.urn, None)
            except HostError as exc:
                with self._lock:
                    summary.failed[entry.name] = exc.message
                return
            with self._lock:
                summary.deleted.append(entry.name)

        return step

    def _put(self, entry: StateEntry) -> None:
        with self._lock:
            self.state[entry.urn] = entry
