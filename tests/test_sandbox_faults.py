"""The sandbox misbehaves exactly as asked: injected faults, the rate limit, API versions, stats, admin routes.

Each fault is checked for what the client sees and for what was (or was not) applied server-side.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pydantic
import pytest

from oppie_pulumi.sandbox import Faults, SandboxConfig, SandboxServer, serve


def create(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/phone", json={"name": "Agent", **body})
    assert response.status_code in (200, 201), response.text
    agent: dict[str, Any] = response.json()
    return agent


# --- failures before anything is applied ----------------------------------------------------------------


def test_fail_next_answers_503_for_exactly_n_requests_and_applies_nothing(
    client: httpx.Client, server: SandboxServer
) -> None:
    server.set_faults(fail_next=2)

    statuses = [client.post("/phone", json={"name": f"try {i}"}).status_code for i in range(3)]

    assert statuses == [503, 503, 201]
    assert [agent["name"] for agent in server.agents()] == ["try 2"]


def test_injected_failure_uses_the_error_envelope(client: httpx.Client, server: SandboxServer) -> None:
    server.set_faults(fail_next=1, fail_status=500)

    response = client.get("/phone")

    assert response.status_code == 500
    assert response.json()["statusCode"] == 500
    assert response.json()["error"] == "Internal Server Error"


def test_html_errors_answer_like_a_gateway_page(client: httpx.Client, server: SandboxServer) -> None:
    server.set_faults(fail_next=1, fail_status=502, html_errors=True)

    response = client.get("/phone")

    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert response.text == "<html><body><h1>502 Bad Gateway</h1></body></html>"


def test_error_rate_one_fails_everything_and_zero_nothing(client: httpx.Client, server: SandboxServer) -> None:
    server.set_faults(error_rate=1.0)
    assert {client.post("/phone", json={"name": "x"}).status_code for _ in range(5)} == {503}
    assert server.agents() == []

    server.set_faults(error_rate=0.0)
    assert client.get("/phone").status_code == 200


def test_seeded_error_rate_fails_the_same_requests_every_time(client: httpx.Client, server: SandboxServer) -> None:
    def run() -> list[int]:
        server.set_faults(error_rate=0.5, seed=1234)
        return [client.get("/phone").status_code for _ in range(20)]

    first, second = run(), run()

    assert first == second
    assert set(first) == {200, 503}


def test_malformed_json_next_answers_200_with_truncated_json(client: httpx.Client, server: SandboxServer) -> None:
    server.set_faults(malformed_json_next=1)

    broken = client.post("/phone", json={"name": "x"})

    assert broken.status_code == 200
    assert broken.headers["content-type"] == "application/json"
    with pytest.raises(ValueError):
        broken.json()
    assert server.agents() == []
    assert client.get("/phone").json() == []


@pytest.mark.parametrize(("retry_after_s", "header"), [(2, "2"), (1.0, "1"), (0.5, "0.5")])
def test_rate_limit_next_answers_429_with_retry_after(
    client: httpx.Client, server: SandboxServer, retry_after_s: float, header: str
) -> None:
    server.set_faults(rate_limit_next=1, retry_after_s=retry_after_s)

    limited = client.post("/phone", json={"name": "x"})

    assert limited.status_code == 429
    assert limited.headers["retry-after"] == header
    assert limited.json()["error"] == "Too Many Requests"
    assert server.agents() == []
    assert client.post("/phone", json={"name": "x"}).status_code == 201


def test_latency_delays_every_api_request(client: httpx.Client, server: SandboxServer) -> None:
    server.set_faults(latency_ms=150)

    started = time.perf_counter()
    client.get("/phone")

    assert time.perf_counter() - started >= 0.15


# --- failures after the request was applied -------------------------------------------------------------


def _rename(client: httpx.Client, agent: dict[str, Any]) -> httpx.Response:
    return client.patch(f"/phone/{agent['id']}", json={"name": "renamed"})


def _delete(client: httpx.Client, agent: dict[str, Any]) -> httpx.Response:
    return client.delete(f"/phone/{agent['id']}")


def test_drop_after_apply_creates_the_agent_but_breaks_the_response(
    client: httpx.Client, server: SandboxServer
) -> None:
    server.set_faults(drop_after_apply=1)

    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/phone", json={"name": "ghost"})

    assert [agent["name"] for agent in server.agents()] == ["ghost"]
    assert server.state.faults.drop_after_apply == 0
    assert client.get("/phone").json() == server.agents()


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [(_rename, lambda agent: [{**agent, "name": "renamed"}]), (_delete, lambda agent: [])],
    ids=["patch", "delete"],
)
def test_drop_after_apply_applies_updates_and_deletes_too(
    client: httpx.Client, server: SandboxServer, mutate: Any, expected: Any
) -> None:
    agent = create(client)
    server.set_faults(drop_after_apply=1)

    with pytest.raises(httpx.RemoteProtocolError):
        mutate(client, agent)

    after = [{**stored, "updated_at": agent["updated_at"]} for stored in server.agents()]
    assert after == expected(agent)


def test_drop_after_apply_spares_reads_and_refused_requests(client: httpx.Client, server: SandboxServer) -> None:
    server.set_faults(drop_after_apply=1)

    assert client.get("/phone").status_code == 200
    assert client.post("/phone", json={"model": "bad"}).status_code == 400
    assert server.state.faults.drop_after_apply == 1


def test_delay_after_apply_times_the_client_out_after_the_agent_exists(sandbox: SandboxServer) -> None:
    """On a sandbox of its own: the answer it holds back is still in the server when the test ends, and on the
    module's shared one it would take the next test's fault (a `fail_after_apply_next` consumed by this POST)."""
    sandbox.set_faults(delay_after_apply_ms=400)
    headers = {"Authorization": f"Bearer {sandbox.token}"}

    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{sandbox.url}/phone", json={"name": "slow"}, headers=headers, timeout=0.15)

    assert [agent["name"] for agent in sandbox.agents()] == ["slow"]


def test_delay_after_apply_still_answers_a_patient_client(client: httpx.Client, server: SandboxServer) -> None:
    server.set_faults(delay_after_apply_ms=100)

    started = time.perf_counter()
    response = client.post("/phone", json={"name": "late"})

    assert response.status_code == 201
    assert time.perf_counter() - started >= 0.1


def test_fail_after_apply_creates_the_agent_but_answers_the_fail_status(
    client: httpx.Client, server: SandboxServer
) -> None:
    server.set_faults(fail_after_apply_next=1)

    failed = client.post("/phone", json={"name": "applied"})
    after = client.post("/phone", json={"name": "second"})

    assert failed.status_code == 503 and failed.json()["statusCode"] == 503
    assert after.status_code == 201
    assert [agent["name"] for agent in server.agents()] == ["applied", "second"]
    assert server.faults_fired() == {"failed after apply POST /phone": 1}


def test_fail_after_apply_spares_reads_and_refused_writes(client: httpx.Client, server: SandboxServer) -> None:
    server.set_faults(fail_after_apply_next=1)

    assert client.get("/phone").status_code == 200
    assert client.post("/phone", json={"model": "bad"}).status_code == 400
    assert server.state.faults.fail_after_apply_next == 1


def test_late_apply_lands_the_write_after_the_client_gave_up(server: SandboxServer) -> None:
    server.set_faults(late_apply_next=1, late_apply_ms=300)
    headers = {"Authorization": f"Bearer {server.token}"}

    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/phone", json={"name": "late"}, headers=headers, timeout=0.1)
    assert server.agents() == []  # not yet: what a client that looks at once finds

    deadline = time.monotonic() + 10
    while not server.agents() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [agent["name"] for agent in server.agents()] == ["late"]
    assert server.faults_fired() == {"late apply POST /phone": 1}


def test_late_apply_holds_only_the_next_n_writes(client: httpx.Client, server: SandboxServer) -> None:
    server.set_faults(late_apply_next=1, late_apply_ms=50)

    assert client.post("/phone", json={"name": "held"}).status_code == 201
    assert client.post("/phone", json={"name": "not held"}).status_code == 201

    assert server.faults_fired() == {"late apply POST /phone": 1}


@pytest.mark.parametrize("method", ["GET", "POST", "PATCH", "DELETE"])
def test_truncate_next_applies_the_request_and_cuts_its_answer(
    client: httpx.Client, server: SandboxServer, method: str
) -> None:
    agent = create(client)
    server.set_faults(truncate_next=1)
    path = "/phone" if method in ("GET", "POST") else f"/phone/{agent['id']}"

    response = client.request(method, path, json={"name": "cut"} if method in ("POST", "PATCH") else None)

    assert 200 <= response.status_code < 300
    assert int(response.headers["content-length"]) == len(response.content) > 0
    with pytest.raises(ValueError):
        response.json()
    names = [stored["name"] for stored in server.agents()]
    assert names == {"GET": ["Agent"], "POST": ["Agent", "cut"], "PATCH": ["cut"], "DELETE": []}[method]
    route = f"{method} /phone" if method in ("GET", "POST") else f"{method} /phone/{{id}}"
    assert server.faults_fired() == {f"truncated {route}": 1}


def test_truncate_rate_is_drawn_from_the_seed(client: httpx.Client, server: SandboxServer) -> None:
    def run() -> list[bool]:
        server.set_faults(truncate_rate=0.5, seed=99)
        outcomes = []
        for _ in range(20):
            try:
                client.get("/phone").json()
            except ValueError:
                outcomes.append(True)
            else:
                outcomes.append(False)
        return outcomes

    first, second = run(), run()

    assert first == second and set(first) == {True, False}


def test_enforce_retry_after_refuses_a_client_that_comes_back_early(
    client: httpx.Client, server: SandboxServer
) -> None:
    server.set_faults(rate_limit_next=1, retry_after_s=60, enforce_retry_after=True)

    first = client.get("/phone")
    early = client.get("/phone")

    assert (first.status_code, early.status_code) == (429, 429)
    assert 59 <= float(early.headers["retry-after"]) <= 60
    assert server.faults_fired() == {"early retry refused GET /phone": 1}
    server.reset()
    assert client.get("/phone").status_code == 200  # a reset opens it again


def test_enforce_retry_after_lets_a_client_that_waited_through(client: httpx.Client, server: SandboxServer) -> None:
    server.set_faults(rate_limit_next=1, retry_after_s=0.1, enforce_retry_after=True)

    assert client.get("/phone").status_code == 429
    time.sleep(0.1)
    assert client.get("/phone").status_code == 200
    assert server.faults_fired() == {}


# --- API versions ---------------------------------------------------------------------------------------


def test_post_status_200_emulates_the_newer_create(client: httpx.Client, server: SandboxServer) -> None:
    server.set_faults(post_status_200=True)

    response = client.post("/phone", json={"name": "x"})

    assert response.status_code == 200
    assert response.json()["name"] == "x"


def test_patch_empty_body_emulates_the_older_update(client: httpx.Client, server: SandboxServer) -> None:
    agent = create(client)
    server.set_faults(patch_empty_body=True)

    response = client.patch(f"/phone/{agent['id']}", json={"name": "renamed"})

    assert (response.status_code, response.content) == (200, b"")
    assert server.agents()[0]["name"] == "renamed"


def test_language_as_list_wraps_the_language_and_keeps_null(client: httpx.Client, server: SandboxServer) -> None:
    english, unset = create(client, language="en"), create(client)
    server.set_faults(language_as_list=True)

    listed = client.get("/phone").json()
    updated = client.patch(f"/phone/{english['id']}", json={"accent": "us"}).json()

    assert [agent["language"] for agent in listed] == [["en"], None]
    assert updated["language"] == ["en"]
    assert [agent["language"] for agent in server.agents()] == ["en", None]
    assert unset["language"] is None


def test_extra_fields_adds_what_newer_api_versions_return(client: httpx.Client, server: SandboxServer) -> None:
    server.set_faults(extra_fields=True)

    agent = create(client)

    assert {key: agent[key] for key in agent.keys() - server.agents()[0].keys()} == {
        "speed": 1.0,
        "flow": None,
        "manual_mode": False,
        "custom_llm": None,
        "use_org_knowledgebase": True,
        "recording_enabled": False,
    }


def test_faults_given_at_startup_are_in_force_and_are_what_reset_returns_to() -> None:
    config = SandboxConfig(db_path=":memory:", faults=Faults(post_status_200=True, fail_next=1))
    with serve(config) as server, httpx.Client(base_url=server.url) as client:
        client.headers["Authorization"] = f"Bearer {server.token}"
        assert client.post("/phone", json={"name": "x"}).status_code == 503
        assert client.post("/phone", json={"name": "x"}).status_code == 200
        server.set_faults(post_status_200=False)
        assert client.post("/phone", json={"name": "x"}).status_code == 201

        server.reset_faults()

        assert server.state.faults == Faults(post_status_200=True, fail_next=1)
    assert config.faults == Faults(post_status_200=True, fail_next=1), "the config is never mutated"


def test_set_faults_keeps_the_faults_it_does_not_name(server: SandboxServer) -> None:
    server.set_faults(latency_ms=5)
    server.set_faults(fail_next=2)

    assert (server.state.faults.latency_ms, server.state.faults.fail_next) == (5, 2)


@pytest.mark.parametrize("changes", [{"fail_nxt": 1}, {"error_rate": 1.5}, {"fail_next": -1}])
def test_set_faults_refuses_unknown_names_and_bad_values(server: SandboxServer, changes: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        server.set_faults(**changes)
    assert server.state.faults == Faults()


# --- rate limit -----------------------------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after_beyond_the_limit_per_minute() -> None:
    with serve(SandboxConfig(db_path=":memory:", rate_limit_per_minute=3)) as server:
        headers = {"Authorization": f"Bearer {server.token}"}
        with httpx.Client(base_url=server.url, headers=headers) as client:
            assert [client.get("/phone").status_code for _ in range(3)] == [200, 200, 200]

            limited = client.post("/phone", json={"name": "over"})

            assert limited.status_code == 429
            assert limited.json() == {
                "statusCode": 429,
                "error": "Too Many Requests",
                "message": "ThrottlerException: Too Many Requests",
            }
            assert 1 <= int(limited.headers["retry-after"]) <= 60
            assert server.agents() == []
            # Admin routes are neither limited nor counted against the API's budget.
            assert client.get("/_sandbox/stats").json()["by_status"] == {"200": 3, "429": 1}


def test_rate_limit_zero_or_none_turns_it_off() -> None:
    for limit in (0, None):
        with serve(SandboxConfig(db_path=":memory:", rate_limit_per_minute=limit)) as server:
            headers = {"Authorization": f"Bearer {server.token}"}
            with httpx.Client(base_url=server.url, headers=headers) as client:
                assert {client.get("/phone").status_code for _ in range(120)} == {200}


# --- stats ----------------------------------------------------------------------------------------------


def test_stats_count_requests_by_route_template_and_status(client: httpx.Client, server: SandboxServer) -> None:
    agent = create(client)
    client.get("/phone")
    client.patch(f"/phone/{agent['id']}", json={"name": "y"})
    client.get(f"/phone/{agent['id']}")
    client.delete(f"/phone/{agent['id']}")
    client.delete(f"/phone/{agent['id']}")

    assert server.stats() == {
        "requests": 6,
        "by_route": {
            "POST /phone": 1,
            "GET /phone": 1,
            "PATCH /phone/{id}": 1,
            "GET /phone/{id}": 1,
            "DELETE /phone/{id}": 2,
        },
        "by_status": {"201": 1, "200": 3, "404": 2},
        "connections": 1,
    }


def test_stats_count_each_tcp_connection_once(server: SandboxServer) -> None:
    headers = {"Authorization": f"Bearer {server.token}"}
    for _ in range(2):
        with httpx.Client(base_url=server.url, headers=headers) as client:
            for _ in range(3):
                client.get("/phone")

    assert server.stats()["connections"] == 2
    assert server.stats()["requests"] == 6


def test_stats_count_refused_and_injected_answers_too(client: httpx.Client, server: SandboxServer) -> None:
    server.set_faults(fail_next=1)
    client.get("/phone")
    httpx.get(f"{server.url}/phone")

    assert server.stats()["by_status"] == {"503": 1, "401": 1}

    server.reset_stats()
    assert server.stats() == {"requests": 0, "by_route": {}, "by_status": {}, "connections": 0}


# --- admin routes ---------------------------------------------------------------------------------------


def test_admin_routes_change_faults_at_runtime(client: httpx.Client, server: SandboxServer) -> None:
    assert client.get("/_sandbox/faults").json() == Faults().model_dump()

    replaced = client.put("/_sandbox/faults", json={"fail_next": 1, "latency_ms": 1})
    patched = client.patch("/_sandbox/faults", json={"latency_ms": 0, "post_status_200": True})

    assert replaced.json()["fail_next"] == 1
    assert patched.json() == Faults(fail_next=1, post_status_200=True).model_dump()
    assert client.get("/phone").status_code == 503
    assert client.post("/phone", json={"name": "x"}).status_code == 200

    assert client.put("/_sandbox/faults", json={}).json() == Faults().model_dump()


def test_admin_fault_changes_are_validated(client: httpx.Client) -> None:
    response = client.patch("/_sandbox/faults", json={"error_rate": 2})

    assert response.status_code == 400
    assert any("error_rate" in message for message in response.json()["message"])
    assert client.put("/_sandbox/faults", json={"nope": 1}).status_code == 400


def test_admin_reset_deletes_agents_and_clears_faults_and_stats(client: httpx.Client, server: SandboxServer) -> None:
    create(client)
    server.set_faults(fail_next=5)

    assert client.post("/_sandbox/reset").status_code == 200

    assert server.agents() == []
    assert server.state.faults == Faults()
    assert server.stats()["requests"] == 0


def test_admin_stats_routes_are_not_counted_themselves(client: httpx.Client) -> None:
    client.get("/phone")

    assert client.get("/_sandbox/stats").json()["by_route"] == {"GET /phone": 1}
    assert client.post("/_sandbox/reset-stats").json()["requests"] == 0
    assert client.get("/_sandbox/stats").json()["requests"] == 0


def test_admin_routes_need_the_token_and_ignore_faults(server: SandboxServer) -> None:
    server.set_faults(fail_next=1)

    response = httpx.get(f"{server.url}/_sandbox/faults")

    assert response.status_code == 401
    assert response.json()["error"] == "Unauthorized"
    assert server.state.faults.fail_next == 1
