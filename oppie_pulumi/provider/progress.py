"""What the plugin makes of the API client's waits: progress lines in the CLI, and ``customTimeouts``.

The client declares a hook (``PhoneApiClient(on_wait=...)``) that hears of every wait before it starts: for a
place in the rate limit, before a retry, while a POST that got no answer may land. ``report`` is the plugin's
hook: it shows the wait beside the resource the thread's operation serves (``engine.Operation``), and gives up
(``DeadlineExceeded``) rather than wait past the operation's custom timeout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._exceptions import DeadlineExceeded
from .engine import Operation

if TYPE_CHECKING:
    from .._client import Wait  # the client (httpx) loads when an operation first calls the API, not at start

__all__ = ["report"]

# A wait for the rate limit shorter than this is not worth a line in the CLI.
_MIN_REPORTED_WAIT = 0.5


def report(wait: Wait) -> None:
    """Announce ``wait`` to the engine, or raise ``DeadlineExceeded`` if it would overrun the operation's timeout."""
    operation = Operation.current()
    if operation is None:
        return  # not serving an engine call (a test, a script): nothing to tell, no deadline
    what = f"retry {wait.attempt}" if wait.kind == "retry" else wait.reason
    left = operation.remaining()
    if left is not None and wait.seconds > left:
        raise DeadlineExceeded(
            f"{wait.operation} failed: it would have to wait {wait.seconds:.1f} s for {what}, past its custom "
            f"timeout of {operation.timeout:g} s ({max(left, 0):.1f} s left). Fix: raise the resource's "
            "customTimeouts, or run again when fewer operations share the rate limit (e.g. `pulumi up --parallel 2`)"
        )
    if wait.kind == "retry":
        operation.waiting(
            wait.seconds, f"{wait.operation}: {wait.reason}; retry {wait.attempt} in {wait.seconds:.1f} s"
        )
    elif wait.seconds >= _MIN_REPORTED_WAIT:
        # A status, not a diagnostic: waiting for the limit (or for a request to land) is the client doing its job.
        operation.waiting(wait.seconds, f"{wait.operation}: waiting {wait.seconds:.0f} s for {what}", ephemeral=True)
