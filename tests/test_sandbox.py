"""The sandbox speaks the phone-agent API as documented: routes, statuses, defaults, validation, errors.

Everything goes over real HTTP (httpx) to `serve(...)` on 127.0.0.1:0. One server per module, reset before
each test; tests that need other settings start their own.
"""

from __future__ import annotations

import asyncio
import json
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from oppie_pulumi.sandbox import Faults, SandboxConfig, SandboxServer, create_app, serve

# The POST /phone body of the seed, with the API's own names.
SEED_BODY_FIELDS = {
    "name",
    "type",
    "language",
    "accent",
    "handoff_phone_number",
    "interruptible",
    "actionIds",
    "instructions",
    "data_collection_fields",
    "data_collection_webhook_url",
    "model",
    "first_message",
    "voice_id",
}
SEED_RESPONSE_FIELDS = SEED_BODY_FIELDS | {
    "id",
    "org_id",
    "phone_number",
    "provider_external_id",
    "created_at",
    "updated_at",
}
FULL_BODY: dict[str, Any] = {
    "name": "Front desk",
    "type": "outbound",
    "language": "en",
    "accent": "british",
    "handoff_phone_number": "+14155550123",
    "interruptible": False,
    "actionIds": ["act_1", "act_2"],
    "instructions": ["Be brief.", "Never promise refunds."],
    "data_collection_fields": ["email"],
    "data_collection_webhook_url": "https://hooks.example.com/collect",
    "model": "oppie-vox-turbo",
    "first_message": "Hello!",
    "voice_id": "voice_42",
}
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def create(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/phone", json={"name": "Agent", **body})
    assert response.status_code == 201, response.text
    agent: dict[str, Any] = response.json()
    return agent


def assert_envelope(response: httpx.Response, status: int, error: str) -> Any:
    """Assert the API's error envelope and return its message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"statusCode", "error", "message"}
    assert (body["statusCode"], body["error"]) == (status, error)
    return body["message"]


# --- create ---------------------------------------------------------------------------------------------


def test_create_answers_201_with_every_seed_field_and_the_documented_defaults(client: httpx.Client) -> None:
    response = client.post("/phone", json={"name": "Minimal"})

    assert response.status_code == 201
    agent = response.json()
    assert set(agent) == SEED_RESPONSE_FIELDS
    assert agent["name"] == "Minimal"
    assert agent["type"] == "inbound"
    assert agent["interruptible"] is True
    assert agent["model"] == "oppie-vox"
    nulls = SEED_BODY_FIELDS - {"name", "type", "interruptible", "model"}
    assert {field: agent[field] for field in nulls} == dict.fromkeys(nulls)
    assert agent["org_id"] == "org_sandbox"


def test_create_keeps_every_body_field_as_given(client: httpx.Client, server: SandboxServer) -> None:
    agent = create(client, **FULL_BODY)

    assert {field: agent[field] for field in FULL_BODY} == FULL_BODY
    assert server.agents() == [agent]


def test_create_provisions_a_unique_number_and_provider_id_per_agent(client: httpx.Client) -> None:
    first, second = create(client), create(client)

    for agent in (first, second):
        assert re.fullmatch(r"\+1555\d{7}", agent["phone_number"])
        assert re.fullmatch(r"PN[0-9a-f]{32}", agent["provider_external_id"])
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", agent["id"])
    assert first["id"] != second["id"]
    assert first["phone_number"] != second["phone_number"]
    assert first["provider_external_id"] != second["provider_external_id"]


def test_create_is_not_idempotent_the_same_body_twice_makes_two_agents(
    client: httpx.Client, server: SandboxServer
) -> None:
    create(client, name="Same")
    create(client, name="Same")

    assert [agent["name"] for agent in server.agents()] == ["Same", "Same"]


def test_timestamps_are_iso8601_utc_with_milliseconds(client: httpx.Client) -> None:
    agent = create(client)

    assert TIMESTAMP.match(agent["created_at"])
    assert agent["updated_at"] == agent["created_at"]


# --- list -----------------------------------------------------------------------------------------------


def test_list_answers_a_bare_array_in_creation_order(client: httpx.Client) -> None:
    assert client.get("/phone").json() == []
    created = [create(client, name=f"agent {i}") for i in range(3)]

    response = client.get("/phone")

    assert response.status_code == 200
    assert response.json() == created


def test_list_only_shows_the_configured_organisation(tmp_path: Path) -> None:
    db = str(tmp_path / "agents.db")
    with serve(SandboxConfig(db_path=db, org_id="org_a")) as server_a:
        headers = {"Authorization": f"Bearer {server_a.token}"}
        httpx.post(f"{server_a.url}/phone", json={"name": "A's"}, headers=headers)
    with serve(SandboxConfig(db_path=db, org_id="org_b")) as server_b:
        assert httpx.get(f"{server_b.url}/phone", headers=headers).json() == []


# --- update ---------------------------------------------------------------------------------------------


def test_patch_answers_the_full_updated_agent_and_moves_updated_at(client: httpx.Client) -> None:
    agent = create(client, language="en")
    time.sleep(0.002)

    response = client.patch(f"/phone/{agent['id']}", json={"name": "Renamed", "actionIds": []})

    assert response.status_code == 200
    updated = response.json()
    assert updated == {**agent, "name": "Renamed", "actionIds": [], "updated_at": updated["updated_at"]}
    assert TIMESTAMP.match(updated["updated_at"])
    assert updated["updated_at"] > agent["updated_at"]
    assert client.get("/phone").json() == [updated]


def test_patch_leaves_omitted_fields_alone_and_clears_fields_sent_as_null(client: httpx.Client) -> None:
    agent = create(client, language="en", accent="irish")

    updated = client.patch(f"/phone/{agent['id']}", json={"language": None}).json()

    assert (updated["language"], updated["accent"]) == (None, "irish")


def test_patch_with_the_same_model_is_accepted(client: httpx.Client) -> None:
    agent = create(client, model="oppie-vox-2")

    response = client.patch(f"/phone/{agent['id']}", json={"model": "oppie-vox-2", "name": "Still 2"})

    assert response.status_code == 200
    assert response.json()["model"] == "oppie-vox-2"


def test_patch_changing_the_model_is_refused_and_changes_nothing(client: httpx.Client, server: SandboxServer) -> None:
    agent = create(client)

    response = client.patch(f"/phone/{agent['id']}", json={"model": "oppie-vox-2", "name": "New"})

    assert assert_envelope(response, 400, "Bad Request") == "model cannot be changed after creation"
    assert server.agents() == [agent]


def test_patch_without_a_body_changes_nothing_but_updated_at(client: httpx.Client) -> None:
    agent = create(client)

    response = client.patch(f"/phone/{agent['id']}")

    assert response.status_code == 200
    assert {**response.json(), "updated_at": None} == {**agent, "updated_at": None}


# --- delete ---------------------------------------------------------------------------------------------


def test_delete_answers_200_with_an_empty_body_and_removes_the_agent(
    client: httpx.Client, server: SandboxServer
) -> None:
    kept, gone = create(client), create(client)

    response = client.delete(f"/phone/{gone['id']}")

    assert response.status_code == 200
    assert response.content == b""
    assert server.agents() == [kept]


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
def test_unknown_agent_id_answers_404_naming_the_id(client: httpx.Client, method: str) -> None:
    response = client.request(method, "/phone/no-such-agent", json={} if method == "PATCH" else None)

    assert assert_envelope(response, 404, "Not Found") == "Phone agent no-such-agent not found"


def test_delete_twice_answers_404_the_second_time(client: httpx.Client) -> None:
    agent = create(client)
    assert client.delete(f"/phone/{agent['id']}").status_code == 200

    assert_envelope(client.delete(f"/phone/{agent['id']}"), 404, "Not Found")


# --- routes that do not exist ---------------------------------------------------------------------------


@pytest.mark.parametrize("authorized", [True, False], ids=["with-token", "without-token"])
def test_get_one_agent_is_an_unknown_route_even_for_an_existing_agent(
    client: httpx.Client, server: SandboxServer, authorized: bool
) -> None:
    """The API has no GET /phone/{id}: its 404 is Express's "Cannot GET", which says nothing of the agent."""
    agent = create(client)
    headers = None if authorized else {"Authorization": ""}

    response = client.get(f"/phone/{agent['id']}", headers=headers)

    assert assert_envelope(response, 404, "Not Found") == f"Cannot GET /phone/{agent['id']}"
    assert "allow" not in response.headers


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/agents"), ("PUT", "/phone/abc"), ("POST", "/phone/abc"), ("GET", "/")]
)
def test_any_unknown_route_answers_the_nestjs_404_envelope(client: httpx.Client, method: str, path: str) -> None:
    assert assert_envelope(client.request(method, path), 404, "Not Found") == f"Cannot {method} {path}"


# --- auth -----------------------------------------------------------------------------------------------

ROUTES = [("GET", "/phone"), ("POST", "/phone"), ("PATCH", "/phone/some-id"), ("DELETE", "/phone/some-id")]
BAD_AUTHORIZATIONS = {
    "missing": None,
    "wrong-token": "Bearer not-the-token",
    "not-bearer": "Basic c2FuZGJveC10b2tlbg==",
    "bearer-without-token": "Bearer",
}


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("authorization", BAD_AUTHORIZATIONS.values(), ids=BAD_AUTHORIZATIONS.keys())
def test_every_route_answers_401_without_the_right_bearer_token(
    server: SandboxServer, method: str, path: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}

    response = httpx.request(method, server.url + path, headers=headers, json={"name": "x"})

    assert "token" in assert_envelope(response, 401, "Unauthorized")
    assert server.agents() == []


def test_auth_is_checked_before_the_body_is_validated(server: SandboxServer) -> None:
    response = httpx.post(f"{server.url}/phone", json={"model": "nope"})

    assert_envelope(response, 401, "Unauthorized")


# --- validation -----------------------------------------------------------------------------------------

MODEL_CHOICES = "model must be one of the following values: oppie-vox, oppie-vox-turbo, oppie-vox-2"
TYPE_CHOICES = "type must be one of the following values: inbound, outbound"
E164_MESSAGE = "handoff_phone_number must be a valid phone number in E.164 format, e.g. +14155550123"
URL_MESSAGE = "data_collection_webhook_url must be a URL address (http or https)"

# What the seed forbids, field by field: values outside an enum, and values of the wrong type.
INVALID_VALUES: list[tuple[str, Any, str]] = [
    ("name", "", "name should not be empty"),
    ("name", 42, "name must be a string"),
    ("name", None, "name must be a string"),
    ("type", "sideways", TYPE_CHOICES),
    ("type", None, TYPE_CHOICES),
    ("model", "gpt-4o", MODEL_CHOICES),
    ("model", "oppie-vox-livekit", MODEL_CHOICES),
    ("model", 2, MODEL_CHOICES),
    ("interruptible", "yes", "interruptible must be a boolean value"),
    ("interruptible", 1, "interruptible must be a boolean value"),
    ("interruptible", None, "interruptible must be a boolean value"),
    ("actionIds", "act_1", "actionIds must be an array"),
    ("actionIds", [1, 2], "each value in actionIds must be a string"),
    ("instructions", {"a": "b"}, "instructions must be an array"),
    ("data_collection_fields", [None], "each value in data_collection_fields must be a string"),
    ("language", 7, "language must be a string"),
    ("language", ["en"], "language must be a string"),
    ("accent", False, "accent must be a string"),
    ("first_message", ["hi"], "first_message must be a string"),
    ("voice_id", 1.5, "voice_id must be a string"),
    ("handoff_phone_number", "4155550123", E164_MESSAGE),
    ("handoff_phone_number", "+0155550123", E164_MESSAGE),
    ("handoff_phone_number", 14155550123, "handoff_phone_number must be a string"),
    ("data_collection_webhook_url", "not a url", URL_MESSAGE),
    ("data_collection_webhook_url", "ftp://example.com/hook", URL_MESSAGE),
    ("data_collection_webhook_url", 5, "data_collection_webhook_url must be a string"),
    # Where the sandbox and the provider's check used to disagree (issue 11, item 3): both refuse these now.
    ("name", "   ", "name should not be empty"),
    ("name", "\t\n", "name should not be empty"),
    ("handoff_phone_number", "+14155550123\n", E164_MESSAGE),
    ("handoff_phone_number", "+1\u0664\u0661\u0665\u0665\u0665\u0665", E164_MESSAGE),
    ("data_collection_webhook_url", "https://example.com/hook\n", URL_MESSAGE),
    ("data_collection_webhook_url", "http://[abc", URL_MESSAGE),
    ("data_collection_webhook_url", "https://exa\uff0fmple.com/hook", URL_MESSAGE),
    ("data_collection_webhook_url", "https://b\u00fccher.example/hook", URL_MESSAGE),
    ("data_collection_webhook_url", "https://example.com:99999/hook", URL_MESSAGE),
    ("data_collection_webhook_url", "http://:80/hook", URL_MESSAGE),
]


@pytest.mark.parametrize("via", ["create", "update"])
@pytest.mark.parametrize(("field", "value", "message"), INVALID_VALUES)
def test_invalid_field_answers_400_with_a_message_naming_the_field(
    client: httpx.Client, server: SandboxServer, via: str, field: str, value: Any, message: str
) -> None:
    existing = create(client) if via == "update" else None

    if existing is None:
        response = client.post("/phone", json={"name": "Agent", field: value})
    else:
        response = client.patch(f"/phone/{existing['id']}", json={field: value})

    assert assert_envelope(response, 400, "Bad Request") == [message]
    assert server.agents() == ([] if existing is None else [existing])


@pytest.mark.parametrize(
    "url", ["http://[::1]:8080/hook", "HTTPS://Hooks.Example.com", "https://h.example.com/a?b=c#d", "http://10.0.0.1"]
)
def test_any_http_url_with_a_host_is_accepted_as_given(client: httpx.Client, url: str) -> None:
    assert create(client, data_collection_webhook_url=url)["data_collection_webhook_url"] == url


@pytest.mark.parametrize("via", ["create", "update"])
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "A\ud800"),
        ("language", "\udfff"),
        ("accent", "x\udc80y"),
        ("first_message", "\ud83d"),
        ("voice_id", "\ud800"),
        ("instructions", ["fine", "\ud800"]),
        ("actionIds", ["\udfff"]),
        ("data_collection_fields", ["\ud800"]),
    ],
)
def test_a_string_with_a_lone_surrogate_answers_400_naming_the_field(
    client: httpx.Client, server: SandboxServer, via: str, field: str, value: Any
) -> None:
    """JSON can escape a lone UTF-16 surrogate ("\\ud800"), but no UTF-8 store can hold one."""
    existing = create(client) if via == "update" else None
    body = json.dumps({"name": "Agent", field: value} if existing is None else {field: value})
    headers = {"Content-Type": "application/json"}

    if existing is None:
        response = client.post("/phone", content=body, headers=headers)
    else:
        response = client.patch(f"/phone/{existing['id']}", content=body, headers=headers)

    [message] = assert_envelope(response, 400, "Bad Request")
    assert message.startswith(field) and "surrogate" in message
    assert server.agents() == ([] if existing is None else [existing])


def test_every_problem_of_a_body_is_reported_at_once(client: httpx.Client) -> None:
    response = client.post("/phone", json={"type": "x", "model": "y", "interruptible": "no"})

    assert assert_envelope(response, 400, "Bad Request") == [
        "name should not be empty",
        "name must be a string",
        TYPE_CHOICES,
        "interruptible must be a boolean value",
        MODEL_CHOICES,
    ]


@pytest.mark.parametrize("field", ["actionids", "action_ids", "webhook", "id", "phone_number"])
def test_unknown_body_fields_are_refused_by_name(client: httpx.Client, field: str) -> None:
    """forbidNonWhitelisted: a misspelt field is an error, not silently dropped (actionIds is camelCase)."""
    response = client.post("/phone", json={"name": "Agent", field: ["x"]})

    assert assert_envelope(response, 400, "Bad Request") == [f"property {field} should not exist"]


def test_unknown_fields_are_refused_on_update_too(client: httpx.Client) -> None:
    agent = create(client)

    response = client.patch(f"/phone/{agent['id']}", json={"speed": 1.5})

    assert assert_envelope(response, 400, "Bad Request") == ["property speed should not exist"]


def test_create_without_a_body_reports_the_missing_name(client: httpx.Client) -> None:
    message = assert_envelope(client.post("/phone"), 400, "Bad Request")

    assert message == ["name should not be empty", "name must be a string"]


@pytest.mark.parametrize(
    ("content", "content_type"),
    [(b'{"name": "x",', "application/json"), (b"name=x", "text/plain"), (b'["name"]', "application/json")],
    ids=["truncated-json", "not-json", "json-array"],
)
def test_a_body_that_is_not_a_json_object_answers_400(
    client: httpx.Client, server: SandboxServer, content: bytes, content_type: str
) -> None:
    response = client.post("/phone", content=content, headers={"Content-Type": content_type})

    assert_envelope(response, 400, "Bad Request")
    assert server.agents() == []


# --- OpenAPI --------------------------------------------------------------------------------------------


def test_openapi_create_schema_accepts_every_seed_field_under_its_api_name(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    body_ref = spec["paths"]["/phone"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][body_ref.rsplit("/", 1)[1]]

    assert set(schema["properties"]) == SEED_BODY_FIELDS
    assert schema["required"] == ["name"]
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert props["type"]["enum"] == ["inbound", "outbound"]
    assert props["model"]["enum"] == ["oppie-vox", "oppie-vox-turbo", "oppie-vox-2"]
    assert (props["type"]["default"], props["interruptible"]["default"], props["model"]["default"]) == (
        "inbound",
        True,
        "oppie-vox",
    )
    # ...and a body with every one of those fields is accepted as is.
    assert {k: v for k, v in create(client, **FULL_BODY).items() if k in SEED_BODY_FIELDS} == FULL_BODY


def test_openapi_documents_the_seed_response_and_no_get_by_id(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()

    created = spec["paths"]["/phone"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    agent_schema = spec["components"]["schemas"][created["$ref"].rsplit("/", 1)[1]]
    assert set(agent_schema["properties"]) == SEED_RESPONSE_FIELDS
    assert set(spec["paths"]["/phone/{id}"]) == {"patch", "delete"}
    assert client.get("/docs").status_code == 200


# --- lifecycle, persistence, in-process use and the CLI -------------------------------------------------


def test_serve_starts_in_well_under_a_second_and_close_is_idempotent() -> None:
    started = time.perf_counter()
    server = serve(SandboxConfig(db_path=":memory:"))
    elapsed = time.perf_counter() - started
    try:
        assert elapsed < 0.5
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.url)
        assert httpx.get(f"{server.url}/openapi.json").status_code == 200
    finally:
        server.close()
    server.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/phone")


def test_agents_survive_a_restart_with_a_file_database(tmp_path: Path) -> None:
    db = tmp_path / "nested" / "dir" / "agents.db"
    with serve(SandboxConfig(db_path=str(db))) as first:
        headers = {"Authorization": f"Bearer {first.token}"}
        agent = httpx.post(f"{first.url}/phone", json=FULL_BODY, headers=headers).json()

    with serve(SandboxConfig(db_path=str(db))) as second:
        assert httpx.get(f"{second.url}/phone", headers=headers).json() == [agent]
        assert httpx.delete(f"{second.url}/phone/{agent['id']}", headers=headers).status_code == 200

    with serve(SandboxConfig(db_path=str(db))) as third:
        assert third.agents() == []


def test_a_memory_database_keeps_nothing_across_restarts() -> None:
    with serve(SandboxConfig(db_path=":memory:")) as first:
        httpx.post(f"{first.url}/phone", json={"name": "x"}, headers={"Authorization": "Bearer sandbox-token"})
        assert len(first.agents()) == 1
    with serve(SandboxConfig(db_path=":memory:")) as second:
        assert second.agents() == []


def test_the_app_runs_in_process_and_exposes_its_state() -> None:
    app = create_app(SandboxConfig(db_path=":memory:", token="t", faults=Faults(post_status_200=True)))
    state = app.state.sandbox

    async def exercise() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": "Bearer t"}
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox", headers=headers) as client:
            first = await client.post("/phone", json={"name": "in-process"})
            state.faults.post_status_200 = False
            second = await client.post("/phone", json={"name": "again"})
            return [first.status_code, second.status_code]

    try:
        assert asyncio.run(exercise()) == [200, 201]
        assert [agent["name"] for agent in state.store.agents()] == ["in-process", "again"]
        assert state.stats.snapshot()["by_route"] == {"POST /phone": 2}
    finally:
        state.close()


def test_cli_prints_its_url_and_serves_until_terminated(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    command = [sys.executable, "-m", "oppie_pulumi.sandbox", "--port", "0", "--token", "cli-token"]
    with subprocess.Popen(
        [*command, "--db", str(db), "--post-200"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            ready, _, _ = select.select([process.stdout], [], [], 30)
            assert ready, "the CLI printed nothing within 30 s"
            line = process.stdout.readline()
            match = re.fullmatch(
                r"oppie sandbox listening on (http://127\.0\.0\.1:\d+) \(token: cli-token, db: (.+)\)\n", line
            )
            assert match, line
            assert match[2] == str(db.resolve())
            headers = {"Authorization": "Bearer cli-token"}
            created = httpx.post(f"{match[1]}/phone", json={"name": "cli"}, headers=headers)
            assert created.status_code == 200  # --post-200
            assert [agent["name"] for agent in httpx.get(f"{match[1]}/phone", headers=headers).json()] == ["cli"]
        finally:
            process.terminate()
            _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert db.exists()


def test_the_sandbox_command_on_a_port_in_use_says_a_sandbox_may_already_run_there(
    sandbox: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from oppie_pulumi.sandbox.__main__ import main

    port = sandbox.url.rsplit(":", 1)[1]
    assert main(["--port", port, "--db", ":memory:"]) == 1
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err
    assert "most likely a sandbox" in err and "make sandbox-stop" in err
