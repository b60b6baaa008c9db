"""The benchmark script still runs: ``benchmarks/run.py --smoke`` end to end, as CI's smoke run.

Only that it works is asserted, never how fast: figures on a shared CI machine say nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_benchmark_smoke_run_exits_zero_and_prints_the_table(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--smoke", "--json", str(figures)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    header = next((line for line in result.stdout.splitlines() if line.startswith("measurement")), None)
    assert header is not None, result.stdout[-3000:]
    assert header.split() == ["measurement", "provider", "raw/floor", "ratio", "goal", "met?"]
    rows = json.loads(figures.read_text())["rows"]
    assert {row["measurement"].split(",")[0] for row in rows} >= {"create", "read", "update", "delete"}
