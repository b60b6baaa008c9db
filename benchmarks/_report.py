"""What the benchmark scripts share: the agent they declare, the sanity checks, the table they print and the
machine they describe.

``benchmarks/run.py`` (in-process, against the raw API) and ``benchmarks/engine.py`` (the real CLI, against a
no-op provider) print the same kind of table, so they print it with the same code; each keeps its own header,
because "floor" means the raw API to one and the no-op provider to the other.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_STARTED = time.perf_counter()


def spec(i: int, **extra: Any) -> dict[str, Any]:
    """A typical agent, as a program declares it (Python names); both scripts measure this one."""
    return {
        "name": f"Support line {i}",
        "language": "en",
        "instructions": ["Be brief", "Hand off billing questions"],
        "first_message": "Hi, how can I help?",
        "handoff_phone_number": "+14155550123",
        **extra,
    }


def expect(condition: bool, message: str) -> None:
    """A benchmark that measured the wrong thing must say so, not print a figure."""
    if not condition:
        raise RuntimeError(f"benchmark sanity check failed: {message}")


def progress(message: str) -> None:
    """Say on stderr what is running, so that a long run shows where it is."""
    print(f"[{time.perf_counter() - _STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def p95(values: Sequence[float]) -> float:
    """Nearest-rank 95th percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


@dataclass
class Row:
    """One line of the table: what was measured, ours, the floor, their ratio and the goal it is judged by.

    ``data`` holds the numbers behind it for ``--json``; ``key``, where set, names the row there so that a test
    can find it without parsing the prose of ``figure``.
    """

    figure: str
    ours: str
    floor: str = "-"
    ratio: str = "-"
    goal: str = "-"
    met: bool | None = None
    data: dict[str, Any] = field(default_factory=dict)
    key: str = ""

    def cells(self) -> tuple[str, ...]:
        met = "-" if self.met is None else ("met" if self.met else "MISSED")
        return (self.figure, self.ours, self.floor, self.ratio, self.goal, met)


def print_table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> None:
    """Left-aligned columns as wide as their widest cell, a rule under the header."""
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]

    def fmt(line: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()

    print(fmt(header))
    print("  ".join("-" * width for width in widths))
    for line in lines:
        print(fmt(line))


def goals_line(rows: Sequence[Row], seconds: float) -> str:
    judged = [row for row in rows if row.met is not None]
    return f"{sum(bool(row.met) for row in judged)} of {len(judged)} goals met; {seconds:.0f} s"


def machine() -> dict[str, Any]:
    """What the figures were measured on (each script adds the versions that matter to it)."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        nproc = os.cpu_count() or 0
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "nproc": nproc,
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in load],
    }


@functools.cache
def pulumi_bin() -> Path:
    """The folder of the pinned CLI, found or built by ``tools/pulumi/install.sh --build`` (what the tests use)."""
    install = Path(__file__).resolve().parent.parent / "tools" / "pulumi" / "install.sh"
    result = subprocess.run([str(install), "--build"], capture_output=True, text=True, check=False)
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"tools/pulumi/install.sh --build failed: {result.stderr[-2000:]}")
    return Path(lines[-1])
