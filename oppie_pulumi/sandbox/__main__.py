"""`python -m oppie_pulumi.sandbox` (or `oppie-sandbox`): serve the sandbox until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import errno
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from pydantic import ValidationError

from ._faults import Faults
from ._server import serve
from ._state import SandboxConfig

_DEFAULTS = SandboxConfig()


def build_parser() -> argparse.ArgumentParser:
    """The command line of the sandbox."""
    parser = argparse.ArgumentParser(
        prog="oppie-sandbox",
        description="Serve a local stand-in of the phone-agent API (fault injection under /_sandbox).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8787, help="0 lets the OS pick (default: %(default)s)")
    parser.add_argument("--token", default=_DEFAULTS.token, help="bearer token to expect (default: %(default)s)")
    parser.add_argument("--db", default=_DEFAULTS.db_path, help='SQLite file, or ":memory:" (default: %(default)s)')
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=_DEFAULTS.rate_limit_per_minute,
        metavar="N",
        help="requests per minute per token, 0 = off (default: %(default)s)",
    )
    parser.add_argument(
        "--rate-window",
        type=float,
        default=_DEFAULTS.rate_window_seconds,
        metavar="S",
        help="the window --rate-limit counts over, in seconds; shorter time-scales a benchmark (default: %(default)s)",
    )
    parser.add_argument("--latency-ms", type=int, default=0, metavar="N", help="delay before every API request")
    parser.add_argument(
        "--error-rate", type=float, default=0.0, metavar="F", help="share of API requests answered 503 (0..1)"
    )
    parser.add_argument("--post-200", action="store_true", help="create answers 200, as newer API versions do")
    parser.add_argument(
        "--patch-empty-body", action="store_true", help="PATCH answers with an empty body, as older versions do"
    )
    parser.add_argument(
        "--language-as-list", action="store_true", help='return language as a list (["en"]), as newer versions do'
    )
    parser.add_argument("--extra-fields", action="store_true", help="return the fields newer versions add")
    parser.add_argument(
        "--clock-offset-ms", type=int, default=0, metavar="N", help="the API's clock in its stamps, off real time"
    )
    parser.add_argument(
        "--whole-second-stamps", action="store_true", help="stamps cut to whole seconds, written as .000Z"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sandbox in the foreground; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        faults = Faults(
            latency_ms=args.latency_ms,
            error_rate=args.error_rate,
            post_status_200=args.post_200,
            patch_empty_body=args.patch_empty_body,
            language_as_list=args.language_as_list,
            extra_fields=args.extra_fields,
            clock_offset_ms=args.clock_offset_ms,
            whole_second_stamps=args.whole_second_stamps,
        )
    except ValidationError as exc:
        parser.error(str(exc))
    config = SandboxConfig(
        token=args.token,
        db_path=args.db,
        rate_limit_per_minute=args.rate_limit or None,
        rate_window_seconds=args.rate_window,
        faults=faults,
    )
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Installed before the server starts, so an early Ctrl-C still shuts it down cleanly.
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            server = serve(config, args.host, args.port)
        except OSError as exc:
            print(f"oppie sandbox: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
            if exc.errno == errno.EADDRINUSE:
                # The usual cause: `make up` or `make sandbox-start` left one running in the background.
                print(
                    "  something already listens there, most likely a sandbox (`make up` and `make sandbox-start`"
                    " start one in the background; `make sandbox-stop` stops that one): use it, or pass another"
                    " --port",
                    file=sys.stderr,
                )
            return 1
        with server:
            db = config.db_path if config.db_path == ":memory:" else str(Path(config.db_path).resolve())
            print(f"oppie sandbox listening on {server.url} (token: {server.token}, db: {db})", flush=True)
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
