"""What the plugin tells the engine while it works: log lines, and the operation each thread is serving.

A provider plugin reaches the CLI's display only through the engine's ``Log`` RPC (its stdout carries the port,
its stderr is not meant for users). The engine's address is the plugin's first command-line argument. Each
gRPC call the engine makes runs on its own thread, so the resource a log line belongs to (its URN) and the
operation's deadline (``customTimeouts``) are kept per thread: ``Operation.current()`` is the one this thread
serves, and code deep in the HTTP client reports through it without being handed anything.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import grpc

from .protocol import engine_pb2, engine_pb2_grpc

__all__ = ["EngineLog", "Operation"]


class EngineLog:
    """Sends log lines to the engine, which shows them in the CLI beside the resource they name.

    Without an engine (the plugin started by hand, or by a test that speaks gRPC to it) lines go nowhere. A log
    line that cannot be delivered never fails the operation it describes.
    """

    def __init__(self, address: str | None) -> None:
        self._stub: Any = None
        if address:
            self._channel = grpc.insecure_channel(address)
            self._stub = engine_pb2_grpc.EngineStub(self._channel)

    def info(self, message: str, urn: str = "", *, ephemeral: bool = False) -> None:
        """An informational line; ``ephemeral`` ones only show in the resource's status while it is in progress."""
        self._send(engine_pb2.INFO, message, urn, ephemeral)

    def debug(self, message: str, urn: str = "") -> None:
        """A line shown only with ``--logtostderr -v=...`` or ``--debug``: details a user does not need."""
        self._send(engine_pb2.DEBUG, message, urn, False)

    def _send(self, severity: Any, message: str, urn: str, ephemeral: bool) -> None:
        if self._stub is None:
            return
        request = engine_pb2.LogRequest(severity=severity, message=message, urn=urn, ephemeral=ephemeral)
        with contextlib.suppress(grpc.RpcError):
            self._stub.Log(request, timeout=10)


@dataclass
class Operation:
    """One engine call being served: which resource, until when, and where its progress lines go."""

    urn: str
    log: EngineLog
    deadline: float | None = None  # time.monotonic() by which the operation must finish (customTimeouts)
    timeout: float = 0.0
    waited: float = 0.0  # seconds announced as waits (rate limit, retries)

    _local: ClassVar[threading.local] = threading.local()

    @classmethod
    def current(cls) -> Operation | None:
        """The operation this thread is serving, if any."""
        operation: Operation | None = getattr(cls._local, "operation", None)
        return operation

    @classmethod
    @contextlib.contextmanager
    def serving(cls, urn: str, log: EngineLog, timeout: float = 0.0) -> Iterator[Operation]:
        """Make an operation current on this thread; ``timeout`` seconds (0: none) set its deadline."""
        operation = cls(urn, log, time.monotonic() + timeout if timeout > 0 else None, timeout)
        previous = cls.current()
        cls._local.operation = operation
        try:
            yield operation
        finally:
            cls._local.operation = previous
            if operation.waited:
                # The display keeps showing a resource's last line beside it: replace the last wait with a
                # summary, so a finished operation does not still seem to wait.
                log.info(f"waited {operation.waited:.1f} s in all for the rate limit and retries", urn, ephemeral=True)

    def waiting(self, seconds: float, message: str, *, ephemeral: bool = False) -> None:
        """A line in the CLI about what the operation is about to wait ``seconds`` for.

        ``ephemeral`` lines only show beside the resource while it is in progress; the others are also listed
        under "Diagnostics" at the end.
        """
        self.waited += seconds
        self.log.info(message, self.urn, ephemeral=ephemeral)

    def remaining(self) -> float | None:
        """Seconds left before the deadline, or ``None`` when there is none."""
        return None if self.deadline is None else self.deadline - time.monotonic()
