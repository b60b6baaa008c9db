"""Request counters: what reached the sandbox's API, so tests can assert how a client behaved."""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any


class Stats:
    """Counts API requests by route and by status, and the distinct TCP connections they came on.

    Admin (`/_sandbox`) and documentation requests are never counted: they are not the API.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests = 0
        self._by_route: Counter[str] = Counter()
        self._by_status: Counter[str] = Counter()
        self._connections: set[tuple[str, int]] = set()
        self._writes: list[dict[str, Any]] = []
        self._faults: Counter[str] = Counter()

    def record_connection(self, client: tuple[str, int] | None) -> None:
        """Note the (host, port) a request came from; a reused keep-alive connection counts once."""
        if client is None:
            return
        with self._lock:
            self._connections.add((client[0], client[1]))

    def record_response(self, route: str, status: int) -> None:
        """Count one answered request, e.g. `record_response("POST /phone", 201)`."""
        with self._lock:
            self._requests += 1
            self._by_route[route] += 1
            self._by_status[str(status)] += 1

    def record_write(self, method: str, path: str, body: bytes, status: int) -> None:
        """Journal one applied write with its request body, so tests can say what a client sent (a PATCH
        carrying only the changed fields, one POST per agent)."""
        try:
            parsed: Any = json.loads(body) if body else None
        except ValueError:
            parsed = body.decode(errors="replace")
        with self._lock:
            self._writes.append({"method": method, "path": path, "body": parsed, "status": status})

    def record_fault(self, kind: str, route: str) -> None:
        """Count one fault that acted on a request, e.g. `record_fault("truncated", "PATCH /phone/{id}")`."""
        with self._lock:
            self._faults[f"{kind} {route}"] += 1

    def faults(self) -> dict[str, int]:
        """`{"<fault> <route>": count}` of the faults that acted since the last reset: a test can tell that a
        fault really fired, and on which routes."""
        with self._lock:
            return dict(self._faults)

    def writes(self) -> list[dict[str, Any]]:
        """`[{"method", "path", "body", "status"}]` of every write that reached a handler, oldest first."""
        with self._lock:
            return [dict(write) for write in self._writes]

    def snapshot(self) -> dict[str, Any]:
        """The counters as plain JSON-ready data."""
        with self._lock:
            return {
                "requests": self._requests,
                "by_route": dict(self._by_route),
                "by_status": dict(self._by_status),
                "connections": len(self._connections),
            }

    def reset(self) -> None:
        """Start counting from zero."""
        with self._lock:
            self._requests = 0
            self._by_route.clear()
            self._by_status.clear()
            self._connections.clear()
            self._writes.clear()
            self._faults.clear()
