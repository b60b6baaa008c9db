"""Pure parts of the client and settings, in-process: rate limiter, Retry-After, settings precedence."""

from __future__ import annotations

import threading

import pytest

from oppie_pulumi import ConfigError, Settings
from oppie_pulumi._client import RateLimiter, _retry_after


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_sends_the_first_window_at_once_then_spaces_to_the_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr("oppie_pulumi._client.time.sleep", sleep)
    limiter = RateLimiter(3, clock=clock)
    assert [limiter.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire() == pytest.approx(60.5)
    clock.now += 30
    assert limiter.acquire() == pytest.approx(30.5)


def test_rate_limiter_zero_is_off() -> None:
    limiter = RateLimiter(0)
    assert all(limiter.acquire() == 0.0 for _ in range(1000))


def test_rate_limiter_is_shared_safely_by_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr("oppie_pulumi._client.time.sleep", lambda _s: None)
    limiter = RateLimiter(10, clock=clock)
    waits: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            wait = limiter.acquire()
            with lock:
                waits.append(wait)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(waits) == [0.0] * 10 + [60.5] * 10 + [121.0] * 10


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
    ],
)
def test_bad_settings_name_the_key(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.resolve({key: value}.get, {})


def test_token_is_not_in_settings_repr() -> None:
    assert "s3cret" not in repr(Settings(api_token="s3cret"))
