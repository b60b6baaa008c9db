"""Pure parts of the client and settings, in-process: rate limiter, Retry-After, settings precedence."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from oppie_pulumi import ConfigError, Settings, TransportError
from oppie_pulumi._client import PhoneApiClient, RateLimiter, _retry_after, client_for
from oppie_pulumi.sandbox import SandboxServer

from .support import TOKEN


class FakeTime:
    """A clock that only moves when the limiter sleeps (or a test says so): waits are exact, not measured."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_rate_limiter_window_is_the_apis_60_seconds() -> None:
    """Regression: the limiter tests set the window on the object, so a 1 s window passed the whole suite."""
    time_ = FakeTime()
    limiter = RateLimiter(2, clock=time_.clock, sleep=time_.sleep)
    for _ in range(2):
        limiter.settle(limiter.acquire())
    assert time_.slept == []
    third = limiter.acquire()
    assert time_.slept == [60.0] and third.waited == 60.0


def test_rate_limiter_sends_the_first_window_at_once_then_waits_for_the_oldest_answer() -> None:
    time_ = FakeTime()
    limiter = RateLimiter(3, clock=time_.clock, sleep=time_.sleep)
    slots = [limiter.acquire() for _ in range(3)]
    assert [slot.waited for slot in slots] == [0.0, 0.0, 0.0]
    time_.now += 5.0  # the answers come back 5 s later
    for slot in slots:
        limiter.settle(slot)
    fourth = limiter.acquire()
    assert fourth.waited == 60.0 and time_.slept == [60.0]


def test_rate_limiter_counts_a_request_from_its_answer_not_its_start() -> None:
    time_ = FakeTime()
    limiter = RateLimiter(1, clock=time_.clock, sleep=time_.sleep)
    first = limiter.acquire()
    time_.now += 20.0  # the answer takes 20 s: the API may have counted it late
    limiter.settle(first)
    # counted from its start, the place would free 40 s from now; from its answer, 60 s
    assert limiter.acquire().waited == 60.0


def test_a_request_refused_with_429_gives_its_place_back() -> None:
    time_ = FakeTime()
    limiter = RateLimiter(1, clock=time_.clock, sleep=time_.sleep)
    limiter.release(limiter.acquire())
    assert limiter.acquire().waited == 0.0  # without the release: 60 s
    assert time_.slept == []


def test_rate_limiter_zero_is_off() -> None:
    limiter = RateLimiter(0)
    assert all(limiter.acquire().waited == 0.0 for _ in range(1000))


def test_rate_limiter_shared_by_threads_never_lets_more_than_the_limit_into_a_window() -> None:
    limiter = RateLimiter(10)
    limiter.WINDOW_SECONDS = 0.25
    sent: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            limiter.settle(limiter.acquire())
            with lock:
                sent.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(6)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(sent) == 30
    assert time.monotonic() - started >= 0.5  # 30 requests at 10 per window: at least two full windows
    sent.sort()
    for i, at in enumerate(sent):
        assert sum(1 for other in sent[i:] if other < at + 0.25 - 0.01) <= 10


@pytest.mark.parametrize(("header", "seconds"), [("2", 2.0), ("0.5", 0.5), ("-3", 0.0), ("soon", None), (None, None)])
def test_retry_after_accepts_seconds_and_ignores_garbage(header: str | None, seconds: float | None) -> None:
    assert _retry_after(header) == seconds


def test_retry_after_accepts_an_http_date() -> None:
    value = _retry_after("Wed, 21 Oct 2015 07:28:00 GMT")
    assert value == 0.0  # in the past: no wait


def test_settings_prefer_stack_config_then_environment_then_defaults() -> None:
    config = {"oppie:apiToken": "from-config"}
    env = {"OPPIE_API_TOKEN": "from-env", "OPPIE_BASE_URL": "http://127.0.0.1:1/"}
    settings = Settings.resolve(config.get, env)
    assert settings.api_token == "from-config"
    assert settings.base_url == "http://127.0.0.1:1"
    assert Settings.resolve({}.get, {}).base_url == "https://api.open.cx"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("oppie:baseUrl", "api.open.cx", "must be an http(s) URL"),
        ("oppie:timeoutSeconds", "soon", "oppie:timeoutSeconds / OPPIE_TIMEOUT_SECONDS must be a number"),
        ("oppie:maxRetries", "-1", "must be at least 0"),
        ("oppie:timeoutSeconds", "nan", "oppie:timeoutSeconds / OPPIE_TIMEOUT_SECONDS must be a number"),
        ("oppie:baseUrl", "http://[abc", "must be an http(s) URL"),
        ("oppie:baseUrl", "http://api.example.com:http", "must be an http(s) URL"),
        ("oppie:baseUrl", "http://api.exa mple.com", "must be an http(s) URL"),
    ],
)
def test_bad_settings_name_the_key(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.resolve({key: value}.get, {})


def test_token_is_not_in_settings_repr() -> None:
    assert "s3cret" not in repr(Settings(api_token="s3cret"))


def test_a_bad_setting_is_quoted_capped_and_a_base_url_without_its_credentials() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.resolve({"oppie:baseUrl": "ftp://user:s3cr3t-pw@example.com/x?token=s3cr3t-tok"}.get, {})
    assert "s3cr3t" not in str(caught.value) and "'ftp://example.com/x'" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        Settings.resolve({"oppie:timeoutSeconds": "9" * 10_000 + "x"}.get, {})
    assert len(str(caught.value)) < 200


def test_the_client_for_one_settings_is_built_once_and_shared() -> None:
    """One pool of keep-alive connections per settings, whatever the number of operations (or threads)."""
    settings = Settings(api_token="tok_abcdef123456", base_url="http://127.0.0.1:9")
    other = Settings(api_token="tok_abcdef123456", base_url="http://127.0.0.1:10")
    assert client_for(settings) is client_for(settings)
    assert client_for(other) is not client_for(settings)


def test_a_create_whose_connection_was_refused_is_retried_because_it_never_reached_the_api() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, never listening: connections are refused
        waits: list[float] = []
        client = PhoneApiClient(Settings(api_token="tok_abcdef123456", base_url=url, max_retries=2), sleep=waits.append)
        with pytest.raises(TransportError, match="never reached the API") as caught:
            client.create({"name": "Support"}, label="'Support'")
    assert caught.value.may_have_reached_api is False
    assert len(waits) == 2


def test_answered_requests_count_against_the_limit_and_refused_ones_give_their_place_back(
    sandbox: SandboxServer,
) -> None:
    """With 2 requests a minute, a third request after two answers waits for the window; after a 429 (the API
    did not count it) it does not."""
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    client = PhoneApiClient(Settings(api_token=TOKEN, base_url=sandbox.url, max_requests_per_minute=2), sleep=sleep)
    client._limiter._clock = lambda: now[0]

    sandbox.set_faults(rate_limit_next=1, retry_after_s=0)
    try:
        client.list()  # a 429, then an answer: only the answer counts
        client.list()
        assert waits == [0.0]  # the Retry-After of the 429, and no wait for the window
        client.list()
        assert waits[1:] == [pytest.approx(60.0)]
    finally:
        client._http.close()


def test_a_base_url_the_http_client_cannot_use_is_a_config_error_naming_the_setting() -> None:
    with pytest.raises(ConfigError) as caught:
        PhoneApiClient(Settings(api_token="tok_abcdef123456", base_url="http://\x00x"))
    assert str(caught.value) == (
        "oppie:baseUrl / OPPIE_BASE_URL is not a URL the HTTP client can use: check it for stray characters"
    )
    assert caught.value.__context__ is None  # raised outside the handler: no httpx error rides along
