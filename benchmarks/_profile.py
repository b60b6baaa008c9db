"""``benchmarks/engine.py --profile DIR``: where the time of a CLI run goes.

py-spy is attached to every Python process the CLI starts (the program, each provider host, the plugin), at 100 Hz,
CPU samples only, raw stacks kept in DIR; each process's CPU seconds are read from ``/proc``. ``summarize_stacks``
sorts the samples into imports, our code and the top functions; ``print_profile`` prints them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["Profiler", "print_profile", "summarize_stacks"]


def _children(root: int) -> dict[int, str]:
    """``{pid: command line}`` of every live descendant of ``root``."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                try:
                    found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    continue
                frontier.append(pid)
    return found


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _role(cmdline: str) -> str | None:
    if "-m pulumi.dynamic" in cmdline:
        return "provider host"
    if "-m oppie_pulumi.provider" in cmdline:
        return "plugin"
    if "pulumi-language-python-exec" in cmdline:
        return "program"
    return None


class Profiler:
    """Attaches py-spy to the Python processes of a CLI run and reads their CPU time from /proc."""

    POLL_SECONDS = 0.02

    def __init__(self, folder: Path) -> None:
        found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(found).exists():
            raise SystemExit("--profile needs py-spy: `.venv/bin/pip install py-spy`")
        self.py_spy = found
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.runs = 0

    @contextlib.contextmanager
    def watch(self, root: int, kind: str, command: str) -> Iterator[list[dict[str, Any]]]:
        """While the CLI ``root`` runs, follow its Python children; yields their records, complete on exit."""
        self.runs += 1
        records: list[dict[str, Any]] = []
        spies: list[subprocess.Popen[bytes]] = []
        stop = threading.Event()
        seen: dict[int, dict[str, Any]] = {}

        def follow() -> None:
            while not stop.is_set():
                for pid, cmdline in _children(root).items():
                    role = _role(cmdline)
                    if role is None or pid in seen:
                        continue
                    raw = self.folder / f"{self.runs:03d}-{kind}-{command}-{role.replace(' ', '-')}-{pid}.txt"
                    spies.append(
                        subprocess.Popen(
                            [
                                self.py_spy,
                                "record",
                                "--pid",
                                str(pid),
                                "--rate",
                                "100",
                                "--format",
                                "raw",
                                "--nonblocking",
                                "--output",
                                str(raw),
                            ],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                        )
                    )
                    seen[pid] = {"pid": pid, "role": role, "kind": kind, "command": command, "raw": str(raw)}
                    seen[pid]["first_seen"] = time.perf_counter()
                for pid, record in seen.items():
                    cpu = _cpu_seconds(pid)
                    if cpu is not None:
                        record["cpu_seconds"] = cpu
                        record["last_seen"] = time.perf_counter()
                stop.wait(self.POLL_SECONDS)

        thread = threading.Thread(target=follow, name="profiler", daemon=True)
        thread.start()
        try:
            yield records
        finally:
            stop.set()
            thread.join()
            for spy in spies:
                try:
                    spy.wait(timeout=30)  # py-spy stops when its process exits, then writes its file
                except subprocess.TimeoutExpired:
                    spy.terminate()
                    spy.wait()
            for record in seen.values():
                record["lifetime_seconds"] = record.pop("last_seen", record["first_seen"]) - record.pop("first_seen")
                record.update(summarize_stacks(Path(record["raw"])))
                records.append(record)


def _frame_name(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``file.py:func``."""
    found = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    if not found:
        return frame
    func, path = found.groups()
    return f"{Path(path).name}:{func}"


def summarize_stacks(raw: Path) -> dict[str, Any]:
    """Where a process's CPU samples went: imports, our code, the top functions by own samples."""
    if not raw.exists():
        return {"samples": 0}
    total = imports = ours = ours_import = 0
    own: Counter[str] = Counter()
    ours_inclusive: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        importing = any("_find_and_load" in frame for frame in frames)
        imports += count * importing
        ours_frames = [frame for frame in frames if "oppie_pulumi/" in frame]
        if ours_frames:
            ours += count
            ours_import += count * importing
            for name in {_frame_name(frame) for frame in ours_frames}:
                ours_inclusive[name] += count
        own[_frame_name(frames[-1])] += count
    return {
        "samples": total,
        "import_samples": imports,
        "oppie_samples": ours,
        "oppie_import_samples": ours_import,
        "top_own": own.most_common(8),
        "top_oppie_inclusive": ours_inclusive.most_common(8),
    }


def print_profile(records: Sequence[dict[str, Any]], ours: str) -> None:
    """Where the CPU of each profiled process went; ``ours`` is the kind whose oppie_pulumi frames are listed."""
    print("\nprofile (one extra run per command, py-spy at 100 Hz, CPU samples only; CPU seconds from /proc):")
    for record in sorted(records, key=lambda r: (r["n"], r["figure"], r["role"], r["kind"])):
        samples = record.get("samples", 0) or 1
        print(
            f"- {record['n']} agents, {record['figure']}, {record['role']} of {record['kind']}: "
            f"{record.get('cpu_seconds', 0):.2f} s CPU over {record['lifetime_seconds']:.2f} s "
            f"(command {record['wall_seconds']:.2f} s); samples {record.get('samples', 0)}: "
            f"imports {100 * record.get('import_samples', 0) / samples:.0f} %, in oppie_pulumi "
            f"{100 * record.get('oppie_samples', 0) / samples:.0f} % "
            f"(of which importing {100 * record.get('oppie_import_samples', 0) / samples:.0f} %)"
        )
        top = ", ".join(f"{name} {100 * count / samples:.0f} %" for name, count in record.get("top_own", [])[:5])
        print(f"    own: {top}")
        if record["kind"] == ours and record.get("top_oppie_inclusive"):
            ours = ", ".join(
                f"{name} {100 * count / samples:.0f} %" for name, count in record["top_oppie_inclusive"][:5]
            )
            print(f"    oppie_pulumi, inclusive: {ours}")
