"""Token hygiene (issue 11, item 5): a token no header can carry is refused at configure without being shown,
no error's cause chain carries the request (and its Authorization header), ``Settings`` never pickles the
token, and every error of the project survives a pickle round trip.
"""

from __future__ import annotations

import pickle
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from pulumi.dynamic import Config, ConfigureRequest

from oppie_pulumi import (
    AmbiguousCreate,
    ApiError,
    ConfigError,
    InvalidRequest,
    MalformedResponse,
    NotFound,
    OppieError,
    PhoneAgentProvider,
    RateLimited,
    ServerError,
    Settings,
    TransportError,
    Unauthorized,
    _exceptions,
)
from oppie_pulumi.sandbox import SandboxServer
from oppie_pulumi.testing import HostError, ProviderHost

from .support import TOKEN, agents_program

BAD_TOKENS = {
    "newline": "tok_TEST\n9f8e7d6c5b4a",
    "carriage return": "tok_TEST\r9f8e7d6c5b4a",
    "tab": "tok_TEST\t9f8e7d6c5b4a",
    "NUL": "tok_TEST\x009f8e7d6c5b4a",
    "DEL": "tok_TEST\x7f9f8e7d6c5b4a",
    "non-ASCII": "tok_T\u00c9ST_9f8e7d6c5b4a",
    "zero-width space": "tok_TEST\u200b9f8e7d6c5b4a",
}


@pytest.mark.parametrize("token", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_a_token_no_header_can_carry_is_refused_at_configure_without_showing_it(token: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.resolve({"oppie:apiToken": token}.get, {})
    message = str(caught.value)
    assert "oppie:apiToken" in message and "OPPIE_API_TOKEN" in message
    assert "9f8e7d6c5b4a" not in message and "tok_T" not in message


def test_a_bad_token_from_the_environment_is_refused_too() -> None:
    with pytest.raises(ConfigError, match="OPPIE_API_TOKEN"):
        Settings.resolve({}.get, {"OPPIE_API_TOKEN": BAD_TOKENS["newline"]})


def test_the_provider_host_refuses_a_bad_token_at_configure_without_showing_it(sandbox: SandboxServer) -> None:
    """The host configures a dynamic provider when its first operation arrives: that operation fails."""
    token = BAD_TOKENS["newline"]
    [registration] = agents_program({"resource": "support", "name": "Support"})
    with ProviderHost() as host:
        host.configure({"oppie:apiToken": token, "oppie:baseUrl": sandbox.url})
        with pytest.raises(HostError) as caught:
            host.check(registration.urn, {}, registration.inputs)
    assert "ConfigError: oppie:apiToken / OPPIE_API_TOKEN holds a character no HTTP header can carry" in (
        caught.value.message
    )
    assert "9f8e7d6c5b4a" not in caught.value.details and "9f8e7d6c5b4a" not in host.stderr
    assert sandbox.stats()["requests"] == 0


def chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize(
    ("faults", "config"),
    [
        pytest.param({"latency_ms": 600}, {"timeoutSeconds": "0.2"}, id="timeout"),
        pytest.param({"drop_after_apply": 10}, {}, id="dropped connection"),
        pytest.param({"fail_next": 10}, {}, id="5xx"),
        pytest.param({"malformed_json_next": 10}, {}, id="unreadable answer"),
        pytest.param({}, {"baseUrl": "closed"}, id="connection refused"),
        pytest.param({}, {"apiToken": "wrong-" + TOKEN}, id="401"),
    ],
)
def test_no_error_chain_carries_the_request_or_its_token(
    sandbox: SandboxServer, faults: dict[str, Any], config: dict[str, str]
) -> None:
    settings = {"oppie:apiToken": TOKEN, "oppie:baseUrl": sandbox.url, "oppie:maxRetries": "0"}
    settings.update({f"oppie:{key}": value for key, value in config.items()})
    if settings["oppie:baseUrl"] == "closed":
        settings["oppie:baseUrl"] = closed_port_url()
    provider = PhoneAgentProvider()
    provider.configure(ConfigureRequest(Config(settings, "p")))
    inputs = provider.check({}, {"name": "Support"}).inputs
    sandbox.set_faults(**faults)
    errors: list[BaseException] = []
    for operation in (
        lambda: provider.create(inputs),
        lambda: provider.read("agt_1", {"name": "Support"}),
        lambda: provider.update("agt_1", {"name": "Support"}, {**inputs, "voice_id": "v2"}),
        lambda: provider.delete("agt_1", {"name": "Support"}),
    ):
        try:
            operation()
        except OppieError as exc:
            errors.append(exc)
    assert errors, "no operation failed: the fault did not fire"
    for error in errors:
        for link in chain(error):
            # Only the project's own errors: an httpx error would carry the request, headers and all.
            assert isinstance(link, OppieError), f"{type(link).__module__}.{type(link).__name__} in the chain"
            assert TOKEN not in repr(link) and TOKEN not in repr(vars(link))
            assert TOKEN.encode() not in pickle.dumps(link)


def test_settings_never_pickle_the_token() -> None:
    settings = Settings(api_token=TOKEN, base_url="http://127.0.0.1:1", timeout_seconds=3.0, max_retries=2)
    data = pickle.dumps(settings)
    assert TOKEN.encode() not in data
    restored = pickle.loads(data)
    assert restored.api_token is None
    assert (restored.base_url, restored.timeout_seconds, restored.max_retries) == ("http://127.0.0.1:1", 3.0, 2)


REQUEST = {"operation": "create phone agent 'A'", "method": "POST", "path": "/phone"}
API = {**REQUEST, "status_code": 503, "api_message": "down", "retry_after": 2.0}
SAMPLES: list[OppieError] = [
    OppieError("base"),
    ConfigError("no token"),
    TransportError("timed out", **REQUEST, may_have_reached_api=False),
    ApiError("api", **API),
    InvalidRequest("bad", **API),
    Unauthorized("who", **API),
    NotFound("gone", **API),
    RateLimited("slow down", **API),
    ServerError("down", **API),
    MalformedResponse("garbled", **API),
    AmbiguousCreate("two", candidate_ids=["a", "b"]),
    _exceptions.WrongBaseUrl("not the API", **API),
]


@pytest.mark.parametrize("error", SAMPLES, ids=lambda e: type(e).__name__)
def test_every_project_error_survives_a_pickle_round_trip(error: OppieError) -> None:
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is type(error)
    assert str(restored) == str(error)
    assert vars(restored) == vars(error)


def test_every_error_class_is_sampled() -> None:
    classes = {
        name
        for name, value in vars(_exceptions).items()
        if isinstance(value, type) and issubclass(value, OppieError) and not name.startswith("_")
    }
    assert classes == {type(error).__name__ for error in SAMPLES}
