"""The plugin process (``python -m oppie_pulumi.provider``) over gRPC, as the engine speaks to it.

These pin the protocol-level behaviour the real-CLI tests (test_plugin_yaml.py) rely on, quickly and one at a time:
the schema's names on the wire, check failures per property, the per-property diff the CLI shows, previews that
say what stays known, settings from Configure, and failures as one message with no traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime import proto
from pulumi.runtime.proto import provider_pb2_grpc
from pulumi.runtime.rpc import UNKNOWN

from oppie_pulumi import DeadlineExceeded, Settings
from oppie_pulumi._client import PhoneApiClient
from oppie_pulumi.provider import PHONE_AGENT, VERSION, progress
from oppie_pulumi.provider.engine import EngineLog, Operation
from oppie_pulumi.provider.schema import schema_json
from oppie_pulumi.sandbox import SandboxServer

from .support import TOKEN

URN = f"urn:pulumi:test::proj::{PHONE_AGENT}::support"


def _struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(dict(props))
    return struct


def _dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    return dict(json_format.MessageToDict(struct))


class Plugin:
    """The plugin as a process, started without an engine (its log lines go nowhere)."""

    def __init__(self) -> None:
        env = {key: value for key, value in os.environ.items() if not key.startswith("OPPIE_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "oppie_pulumi.provider"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        assert self.process.stdout is not None
        port = self.process.stdout.readline().decode().strip()
        assert port.isdigit(), port
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)

    def close(self) -> str:
        self.channel.close()
        self.process.kill()
        _, err = self.process.communicate(timeout=10)
        return err.decode(errors="replace")

    def configure(self, **config: Any) -> None:
        self.stub.Configure(proto.ConfigureRequest(args=_struct(config), acceptSecrets=True))

    def check(self, news: Mapping[str, Any], olds: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], list[Any]]:
        response = self.stub.Check(
            proto.CheckRequest(urn=URN, type=PHONE_AGENT, olds=_struct(olds or {}), news=_struct(news))
        )
        return _dict(response.inputs), [(f.property, f.reason) for f in response.failures]

    def diff(self, olds: Mapping[str, Any], news: Mapping[str, Any], ignore: tuple[str, ...] = ()) -> Any:
        return self.stub.Diff(
            proto.DiffRequest(urn=URN, id="a1", olds=_struct(olds), news=_struct(news), ignoreChanges=list(ignore))
        )

    def create(self, props: Mapping[str, Any], *, preview: bool = False) -> tuple[str, dict[str, Any]]:
        response = self.stub.Create(proto.CreateRequest(urn=URN, properties=_struct(props), preview=preview))
        return response.id, _dict(response.properties)


@pytest.fixture
def plugin() -> Iterator[Plugin]:
    started = Plugin()
    yield started
    stderr = started.close()
    # Whatever happened, nothing reached the process's stderr (where a traceback would have gone).
    assert "Traceback" not in stderr, stderr


@pytest.fixture
def configured(plugin: Plugin, sandbox: SandboxServer) -> Plugin:
    plugin.configure(apiToken=TOKEN, baseUrl=sandbox.url, maxRetries="1")
    return plugin


OUTPUTS = {
    "name": "Support",
    "type": "inbound",
    "language": "en",
    "accent": "british",
    "interruptible": True,
    "model": "oppie-vox",
    "firstMessage": "Hello",
    "orgId": "org_1",
    "phoneNumber": "+15550000001",
    "providerExternalId": "PN1",
    "createdAt": "2026-11-24T07:00:00.000Z",
    "updatedAt": "2026-11-24T07:00:00.000Z",
}
INPUTS = {key: OUTPUTS[key] for key in ("name", "type", "language", "accent", "interruptible", "model", "firstMessage")}


def test_plugin_reports_its_version_and_serves_the_generated_schema(plugin: Plugin) -> None:
    assert plugin.stub.GetPluginInfo(empty_pb2.Empty()).version == VERSION
    assert plugin.stub.GetSchema(proto.GetSchemaRequest(version=0)).schema == schema_json()


def test_check_fills_the_apis_defaults_and_names_failures_by_schema_property(plugin: Plugin) -> None:
    inputs, failures = plugin.check({"name": "Support"})
    assert failures == []
    assert inputs == {"name": "Support", "type": "inbound", "interruptible": True, "model": "oppie-vox"}

    _, failures = plugin.check({"name": "Support", "handoffPhoneNumber": "0800", "model": "gpt"})
    assert [prop for prop, _ in failures] == ["handoffPhoneNumber", "model"]
    assert "E.164" in failures[0][1]


def test_check_passes_unknown_values_and_refuses_adopt_id_pointing_at_import(plugin: Plugin) -> None:
    inputs, failures = plugin.check({"name": "Support", "handoffPhoneNumber": UNKNOWN})
    assert failures == [] and inputs["handoffPhoneNumber"] == UNKNOWN

    _, failures = plugin.check({"name": "Support", "adoptId": "a1"})
    assert [prop for prop, _ in failures] == ["adoptId"]
    assert "pulumi import" in failures[0][1]

    _, failures = plugin.check({"name": "Support", "firstMesage": "Hi"})
    assert failures == [("firstMesage", failures[0][1])]
    assert "is not a property of oppie:index:PhoneAgent (known: name, type, language" in failures[0][1]
    assert "firstMessage" in failures[0][1]


def test_diff_reports_each_changed_property_and_model_as_a_replacement(plugin: Plugin) -> None:
    news = {**INPUTS, "firstMessage": "Welcome", "model": "oppie-vox-2", "voiceId": "v1"}
    del news["accent"]
    response = plugin.diff(OUTPUTS, news)
    kinds = {key: diff.kind for key, diff in response.detailedDiff.items()}
    assert kinds == {
        "firstMessage": proto.PropertyDiff.UPDATE,
        "accent": proto.PropertyDiff.DELETE,
        "voiceId": proto.PropertyDiff.ADD,
        "model": proto.PropertyDiff.UPDATE_REPLACE,
    }
    assert list(response.replaces) == ["model"]
    assert response.changes == proto.DiffResponse.DIFF_SOME and response.hasDetailedDiff


def test_diff_finds_nothing_for_equivalent_values_and_honours_ignore_changes(plugin: Plugin) -> None:
    # "en" and the newer API's ["en"] are the same language.
    assert plugin.diff({**OUTPUTS, "language": ["en"]}, INPUTS).changes == proto.DiffResponse.DIFF_NONE
    ignored = plugin.diff(OUTPUTS, {**INPUTS, "firstMessage": "Welcome"}, ignore=("firstMessage",))
    assert ignored.changes == proto.DiffResponse.DIFF_NONE
    # An update keeps the id, the number and the organisation: the preview can show them as known.
    update = plugin.diff(OUTPUTS, {**INPUTS, "firstMessage": "Welcome"})
    assert set(update.stables) == {"orgId", "phoneNumber", "providerExternalId", "createdAt"}


def test_an_unknown_model_may_replace(plugin: Plugin) -> None:
    response = plugin.diff(OUTPUTS, {**INPUTS, "model": UNKNOWN})
    assert list(response.replaces) == ["model"]


def test_check_config_refuses_unusable_settings_each_on_its_key(plugin: Plugin) -> None:
    response = plugin.stub.CheckConfig(
        proto.CheckRequest(
            urn="urn:pulumi:t::p::pulumi:providers:oppie::default",
            news=_struct(
                {"baseUrl": "ftp://example.com", "timeoutSeconds": "soon", "maxRetries": "3", "version": "0.1.0"}
            ),
        )
    )
    failures = {f.property: f.reason for f in response.failures}
    assert set(failures) == {"baseUrl", "timeoutSeconds"}
    assert "http(s) URL" in failures["baseUrl"]


def test_preview_of_a_create_calls_nothing_and_leaves_computed_outputs_unknown(
    configured: Plugin, sandbox: SandboxServer
) -> None:
    agent_id, outputs = configured.create({"name": "Support", "model": "oppie-vox"}, preview=True)
    assert agent_id == ""
    assert outputs["phoneNumber"] == UNKNOWN and outputs["name"] == "Support"
    assert sandbox.writes() == []


def test_create_read_update_delete_against_the_api_in_schema_names(configured: Plugin, sandbox: SandboxServer) -> None:
    inputs, _ = configured.check({"name": "Support", "handoffPhoneNumber": "+14155550123", "accent": "british"})
    agent_id, outputs = configured.create(inputs)
    [agent] = sandbox.agents()
    assert agent_id == agent["id"]
    assert outputs["phoneNumber"] == agent["phone_number"] and outputs["handoffPhoneNumber"] == "+14155550123"
    assert "accent" in outputs and None not in outputs.values()

    news = {**inputs, "firstMessage": "Welcome"}
    del news["accent"]
    preview = configured.stub.Update(
        proto.UpdateRequest(urn=URN, id=agent_id, olds=_struct(outputs), news=_struct(news), preview=True)
    )
    assert _dict(preview.properties)["phoneNumber"] == outputs["phoneNumber"]
    assert _dict(preview.properties)["updatedAt"] == UNKNOWN
    sandbox.reset_stats()
    updated = configured.stub.Update(
        proto.UpdateRequest(urn=URN, id=agent_id, olds=_struct(outputs), news=_struct(news))
    )
    # One PATCH with what changed: the new first message, and null to clear the accent.
    assert [(w["method"], w["body"]) for w in sandbox.writes()] == [
        ("PATCH", {"first_message": "Welcome", "accent": None})
    ]
    assert "accent" not in _dict(updated.properties)

    read = configured.stub.Read(proto.ReadRequest(urn=URN, id=agent_id))
    assert read.id == agent_id and _dict(read.inputs)["firstMessage"] == "Welcome"

    configured.stub.Delete(proto.DeleteRequest(urn=URN, id=agent_id, properties=updated.properties))
    assert sandbox.agents() == []
    assert configured.stub.Read(proto.ReadRequest(urn=URN, id=agent_id)).id == ""


def test_a_failed_call_is_one_message_naming_operation_status_api_message_and_fix(
    plugin: Plugin, sandbox: SandboxServer
) -> None:
    plugin.configure(apiToken="wrong-token-123", baseUrl=sandbox.url)
    with pytest.raises(grpc.RpcError) as failed:
        plugin.create({"name": "Support", "model": "oppie-vox"})
    message = failed.value.details()
    # the create's first call is its baseline list (agents.reconcile): refused, nothing was sent to create
    assert message.startswith("create phone agent 'Support' failed: GET /phone answered 401")
    assert "Fix: check the token" in message
    assert "Traceback" not in message and "wrong-token-123" not in message


def test_a_missing_token_says_both_ways_to_set_it(plugin: Plugin, sandbox: SandboxServer) -> None:
    plugin.configure(baseUrl=sandbox.url)
    with pytest.raises(grpc.RpcError) as failed:
        plugin.create({"name": "Support", "model": "oppie-vox"})
    assert "oppie:apiToken" in failed.value.details() and "OPPIE_API_TOKEN" in failed.value.details()


# -- what the client tells the engine while it waits ----------------------------------------------------------------


class RecordingLog(EngineLog):
    """An EngineLog that keeps its lines, and may act when one is sent (as time passes while the engine shows it)."""

    def __init__(self) -> None:
        super().__init__(None)
        self.lines: list[tuple[str, str, bool]] = []
        self.on_line: Any = None

    def info(self, message: str, urn: str = "", *, ephemeral: bool = False) -> None:
        self.lines.append((message, urn, ephemeral))
        if self.on_line:
            self.on_line()


def limited_client(sandbox: SandboxServer, per_window: float, window: float) -> PhoneApiClient:
    """A client whose waits reach the plugin's hook (``progress.report``), as the plugin builds it."""
    settings = Settings(
        api_token=TOKEN, base_url=sandbox.url, max_requests_per_minute=per_window, rate_limit_window_seconds=window
    )
    return PhoneApiClient(settings, on_wait=progress.report)


def test_a_rate_limit_wait_is_announced_beside_the_resource_before_the_client_blocks(sandbox: SandboxServer) -> None:
    log = RecordingLog()
    with limited_client(sandbox, per_window=2, window=1.0) as client, Operation.serving(URN, log):
        for _ in range(3):
            client.list(operation="read phone agent 'Support'")
    message, urn, ephemeral = log.lines[0]
    assert message == (
        "read phone agent 'Support': waiting 1 s for the client-side rate limit "
        "(2 requests/min, oppie:maxRequestsPerMinute)"
    )
    assert urn == URN and ephemeral
    # Once done, the resource's status line says how long it waited in all, instead of still "waiting".
    summary, _, _ = log.lines[-1]
    assert summary.startswith("waited ") and summary.endswith(" s in all for the rate limit and retries")


def test_a_wait_past_the_custom_timeout_fails_at_once_saying_so(sandbox: SandboxServer) -> None:
    with limited_client(sandbox, per_window=1, window=60.0) as client:
        client.list()
        with Operation.serving(URN, RecordingLog(), timeout=5), pytest.raises(DeadlineExceeded) as failed:
            client.list(operation="read phone agent 'Support'")
    assert str(failed.value).startswith(
        "read phone agent 'Support' failed: it would have to wait 60.0 s for the client-side rate limit"
    )
    assert "custom timeout of 5 s" in str(failed.value) and "customTimeouts" in str(failed.value)
    assert sandbox.stats()["requests"] == 1, "the call that gave up sent nothing"


def test_a_settings_change_updates_the_provider_and_never_replaces_agents(plugin: Plugin) -> None:
    response = plugin.stub.DiffConfig(
        proto.DiffRequest(
            urn="urn:pulumi:t::p::pulumi:providers:oppie::default",
            olds=_struct({"baseUrl": "https://a.example", "apiToken": "x", "version": "0.1.0"}),
            news=_struct({"baseUrl": "https://b.example", "apiToken": "x", "version": "0.1.0"}),
        )
    )
    assert response.changes == proto.DiffResponse.DIFF_SOME
    assert list(response.diffs) == ["baseUrl"] and list(response.replaces) == []
