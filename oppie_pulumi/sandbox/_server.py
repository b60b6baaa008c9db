"""Serve a sandbox app with uvicorn in a background thread, for tests, benchmarks and the CLI."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn
from fastapi import FastAPI

from ._app import create_app
from ._faults import Faults
from ._state import SandboxConfig, SandboxState

_START_TIMEOUT_S = 10.0


class SandboxServer:
    """A running sandbox: its URL and token, and direct access to its state that bypasses HTTP.

    Use it as a context manager, or call `close()`; the server stops accepting, finishes (for at most a
    second) what it is answering, and releases its port and database.
    """

    def __init__(self, config: SandboxConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config
        self.app: FastAPI = create_app(config)
        self._closed = False
        try:
            # Binding here, not in uvicorn, is what makes port 0 usable: the chosen port is known at once.
            self._socket = _bind(host, port)
        except OSError:
            self.state.close()
            raise
        bound_host, bound_port = self._socket.getsockname()[:2]
        shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{shown_host}:{bound_port}"
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                # Leave the host process's logging alone; uvicorn's records still reach the root logger.
                log_config=None,
                log_level="warning",
                access_log=False,
                lifespan="off",
                # h11 and no websockets: nothing optional is imported, and the drop fault is known to work.
                http="h11",
                ws="none",
                loop="asyncio",
                timeout_graceful_shutdown=1,
            )
        )
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name=f"oppie-sandbox {self.url}",
            daemon=True,
        )

    @property
    def token(self) -> str:
        """The bearer token the API expects."""
        return self.config.token

    @property
    def state(self) -> SandboxState:
        """The app's runtime state (faults, store, stats)."""
        state: SandboxState = self.app.state.sandbox
        return state

    def start(self) -> SandboxServer:
        """Start serving and return once the server accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"the sandbox server at {self.url} did not start")
            time.sleep(0.002)
        return self

    def set_faults(self, **changes: Any) -> Faults:
        """Change the named faults and keep the others, e.g. `set_faults(fail_next=2)`."""
        return self.state.fault_state.update(**changes)

    def reset_faults(self) -> Faults:
        """Go back to the faults the server started with (all off unless the config set some)."""
        return self.state.fault_state.reset()

    def stats(self) -> dict[str, Any]:
        """`{"requests", "by_route", "by_status", "connections"}` counted since the last reset."""
        return self.state.stats.snapshot()

    def writes(self) -> list[dict[str, Any]]:
        """Every write (POST, PATCH, DELETE) the API handled since the last reset, with its request body."""
        return self.state.stats.writes()

    def faults_fired(self) -> dict[str, int]:
        """`{"<fault> <route>": count}`: which faults acted on which routes since the last reset."""
        return self.state.stats.faults()

    def reset_stats(self) -> None:
        """Count from zero."""
        self.state.stats.reset()

    def agents(self) -> list[dict[str, Any]]:
        """The agents as stored, oldest first: what exists server-side, whatever the client was told."""
        return self.state.store.agents()

    def reset(self) -> None:
        """Delete every agent, go back to the startup faults and count from zero (`POST /_sandbox/reset`)."""
        self.state.reset()

    def close(self) -> None:
        """Stop the server and release its port and database; closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            self._server.should_exit = True
            self._thread.join()
        self._socket.close()
        self.state.close()

    def __enter__(self) -> SandboxServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SandboxServer(url={self.url!r}, db_path={self.config.db_path!r})"


def serve(config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> SandboxServer:
    """Start a sandbox in a background thread and return it running (port 0: the OS picks a free port).

    Example::

        with serve(SandboxConfig(db_path=":memory:")) as server:
            httpx.get(server.url + "/phone", headers={"Authorization": f"Bearer {server.token}"})
    """
    return SandboxServer(config if config is not None else SandboxConfig(), host, port).start()


def _bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        # A restarted sandbox can take its fixed port back while old connections sit in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock
