"""The provider exits once the engine that started it is gone (``_enginewatch``).

Pulumi starts plugins in process groups of their own, so a `pulumi up` killed with SIGKILL leaves the provider
host running; a create it was retrying would POST after `oppie-pulumi recover` had settled the stack.
tests/test_real_interrupted.py shows it under the real CLI; these pin the parts.
"""

from __future__ import annotations

import socket
import threading

import pytest

from oppie_pulumi._enginewatch import engine_address, watch


@pytest.mark.parametrize(
    ("args", "address"),
    [
        (["127.0.0.1:40123"], "127.0.0.1:40123"),
        (["--logtostderr", "-v=9", "127.0.0.1:40123"], "127.0.0.1:40123"),
        (["--tracing", "http://t", "localhost:1"], "localhost:1"),
        ([], None),
        (["--logtostderr"], None),
        (["not-an-address"], None),
    ],
)
def test_the_engine_address_is_the_last_argument_when_it_is_host_and_port(args: list[str], address: str | None) -> None:
    assert engine_address(args) == address


def test_the_watch_calls_on_gone_once_the_engine_stops_listening_and_not_before() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    address = f"127.0.0.1:{listener.getsockname()[1]}"
    gone = threading.Event()
    assert watch(address, on_gone=gone.set, interval=0.05)
    assert not gone.wait(0.5), "the engine is still listening"
    listener.close()
    assert gone.wait(5), "the engine stopped listening and the watch did not notice"


def test_one_watch_per_address_per_process() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    address = f"127.0.0.1:{listener.getsockname()[1]}"
    try:
        assert watch(address, on_gone=lambda: None, interval=60)
        assert not watch(address, on_gone=lambda: None, interval=60)
    finally:
        listener.close()


def test_a_write_first_makes_sure_the_engine_is_there() -> None:
    """Between two polls, a write would go out for an engine already gone: before_write checks at once."""
    from oppie_pulumi._enginewatch import before_write

    listener = socket.create_server(("127.0.0.1", 0))
    address = f"127.0.0.1:{listener.getsockname()[1]}"
    calls: list[str] = []
    watch(address, on_gone=lambda: calls.append(address), interval=3600)
    before_write()
    assert calls == []
    listener.close()
    before_write()
    assert calls == [address]
