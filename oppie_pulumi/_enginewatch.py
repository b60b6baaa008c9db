"""Stop the provider when the engine that started it is gone, so that no create goes on without it.

Pulumi starts every plugin in a process group of its own (``cmdutil.RegisterProcessGroup`` in its SDK), so a
``pulumi up`` killed with SIGKILL (a cancelled CI job; a timeout that kills the CLI's process group) leaves the
provider host running on its own. A create it was waiting to retry would then POST after ``oppie-pulumi recover``
had decided that the create never landed, and the next ``pulumi up`` would make a second agent; and the process
would stay behind. Each provider process is given the engine's address as its last argument: once nothing listens
there, the engine is gone, and the process exits. Both adapters start the watch (docs/reliability.md).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Sequence

__all__ = ["EXIT_ENGINE_GONE", "before_write", "engine_address", "watch"]

# The status the provider process exits with when its engine is gone (nobody reads it: the engine is dead).
EXIT_ENGINE_GONE = 70
_INTERVAL_SECONDS = 0.5
# Refused this many times in a row before the engine counts as gone: one refusal could be a full backlog.
_REFUSALS = 2
_watched: dict[str, Callable[[], None]] = {}  # address -> on_gone
_lock = threading.Lock()


def engine_address(args: Sequence[str]) -> str | None:
    """The engine's address, ``host:port``: the engine passes it last, after any flags (``--logtostderr``...)."""
    if not args or args[-1].startswith("-"):
        return None
    host, _, port = args[-1].rpartition(":")
    return args[-1] if host and port.isdigit() else None


def _gone(address: str) -> bool:
    """Whether nothing listens at ``address`` (a connection refused); anything else counts as alive."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=2.0):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False  # a timeout or a full backlog is an engine that is busy, not gone


def watch(
    address: str,
    *,
    on_gone: Callable[[], None] = lambda: os._exit(EXIT_ENGINE_GONE),
    interval: float = _INTERVAL_SECONDS,
) -> bool:
    """Watch ``address`` from a daemon thread and call ``on_gone`` once it refuses connections; once per address
    per process. Returns whether this call started the watch."""
    with _lock:
        if address in _watched:
            return False
        _watched[address] = on_gone

    def run() -> None:
        refusals = 0
        while True:
            time.sleep(interval)
            refusals = refusals + 1 if _gone(address) else 0
            if refusals >= _REFUSALS:
                on_gone()
                return

    threading.Thread(target=run, name="oppie-engine-watch", daemon=True).start()
    return True


def before_write() -> None:
    """Called by the client before each write: the watch polls, but a POST sent in the half second after the
    engine died would still be an agent nobody holds, so a write first makes sure its engine is there (a local
    connect, about 0.1 ms; nothing at all where no watch runs: tests, benchmarks, the CLI)."""
    for address, on_gone in list(_watched.items()):
        if _gone(address):
            on_gone()
