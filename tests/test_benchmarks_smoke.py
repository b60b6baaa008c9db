"""The benchmark scripts still run: ``benchmarks/run.py --smoke``, ``benchmarks/engine.py --smoke`` and
``benchmarks/drift.py --smoke``, as CI's smoke runs.

Only that it works is asserted, never how fast: figures on a shared CI machine say nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .realcli import pulumi_bin

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
    assert {row["figure"].split(",")[0] for row in rows} >= {"create", "read", "update", "delete"}


@pytest.mark.realcli
def test_engine_benchmark_smoke_run_prints_the_table_with_no_api_calls_for_no_change(tmp_path: Path) -> None:
    """``benchmarks/engine.py --smoke``: the real CLI, ours against the no-op floor; counts, never durations."""
    pulumi_bin()  # skips (fails under CI=true) without a CLI, like the rest of the real-engine tier
    figures = tmp_path / "engine.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "engine.py"), "--smoke", "--json", str(figures)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    header = next((line for line in result.stdout.splitlines() if line.startswith("figure")), None)
    assert header is not None, result.stdout[-3000:]
    assert header.split() == ["figure", "ours", "floor", "ratio", "goal", "met?"]
    rows = {row["key"]: row["data"] for row in json.loads(figures.read_text())["rows"]}
    assert rows["preview"]["api_calls"] == [0], "a preview of an unchanged stack called the API"
    assert rows["up"]["api_writes"] == [0], "an up of an unchanged stack wrote to the API"
    assert all(0 < lists <= 3 for lists in rows["refresh"]["list_calls"]), rows["refresh"]
    assert rows["pickle"]["pickle_bytes"] <= 512
    assert rows["rate-up"]["created"] == 6 and "429" not in rows["rate-up"]["by_status"], rows["rate-up"]
    assert rows["rate-destroy"]["left"] == 0, rows["rate-destroy"]


@pytest.mark.realcli
def test_drift_benchmark_smoke_run_exits_zero_and_prints_the_table() -> None:
    """``benchmarks/drift.py --smoke``: a review of 30 agents in 3 stacks built without ``pulumi up``; it checks its
    own verdicts and API calls, and this test only that it ran and printed its table."""
    pulumi_bin()  # skips (fails under CI=true) without a CLI, like the rest of the real-engine tier
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "drift.py"), "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    header = next((line for line in lines if line.startswith("figure")), None)
    assert header is not None, result.stdout[-3000:]
    assert header.split() == ["figure", "ours", "floor", "ratio", "goal", "met?"]
    assert any(line.startswith("review of 30 agents in 3 stacks") for line in lines), result.stdout[-3000:]
