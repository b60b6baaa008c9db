"""The second pass of ``make mutation``: the mutants mutmut could not judge, judged by the provider-host tests.

mutmut picks the tests of a mutant from the functions each test called *in the pytest process*. Much of
``phone_agent.py`` runs in the real dynamic-provider host (``python -m pulumi.dynamic``, a child process, as
under the Pulumi CLI), so mutmut records no test for it (``no tests``, e.g. every mutant of ``_adopt``), or
only the in-process tests for a function the host tests also reach. The child does run the mutant: it inherits
``MUTANT_UNDER_TEST`` and imports ``oppie_pulumi`` from ``mutants/`` (its working folder). So this pass runs,
for every mutant mutmut left ``survived`` or ``no tests``, the tests that drive a provider host (the ones
using the ``host_for`` fixture, directly or through ``engine_for``), and records which of them kill it.

    python tools/mutation_host_pass.py [--only GLOB] [--tests FILE ...] [--jobs 2] [--timeout 300]

Run from the checkout after ``mutmut run``; writes ``mutants/host-pass.json`` and prints the figures and the
mutants that still survive. Mutants already judged are kept (a second call resumes).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "mutants"
# One file a kind of pass: the provider-host tests, and every test of given files (a re-judge after tests changed).
RESULTS = {False: MUTANTS / "host-pass.json", True: MUTANTS / "every-test-pass.json"}
# mutmut's exit codes (mutmut/stats.py): what each verdict of the first pass means here.
SURVIVED, NO_TESTS = 0, 33
UNJUDGED = (SURVIVED, NO_TESTS, 5)
KILLED = (1, 3, 36, 24, -24, 152)  # a failing test, pytest's internal error, or a timeout (mutmut's score counts it)
# The tests that start a provider host: every test asking for these fixtures, collected by the plugin below.
HOST_FIXTURES = ("host_for", "engine_for")

# A pytest plugin (loaded with -p from this file's folder): keep only the tests that use a provider host.
PLUGIN = """
def pytest_collection_modifyitems(config, items):
    keep = [i for i in items if {"host_for", "engine_for"} & set(getattr(i, "fixturenames", ()))]
    config.hook.pytest_deselected(items=[i for i in items if i not in keep])
    items[:] = keep
"""


def mutmut_verdicts() -> dict[str, int | None]:
    verdicts: dict[str, int | None] = {}
    for meta in sorted((MUTANTS / "oppie_pulumi").rglob("*.py.meta")):
        verdicts.update(json.loads(meta.read_text())["exit_code_by_key"])
    return verdicts


def test_files() -> list[str]:
    """The suites mutmut runs (``[tool.mutmut]``), so that both passes judge with the same tests."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    return [arg for arg in config["pytest_add_cli_args_test_selection"] if arg.startswith("tests/")]


def judge(
    mutant: str, files: list[str], timeout: float, plugin_dir: Path, every_test: bool = False
) -> tuple[str, str, float]:
    """``killed`` (and the first test that failed), ``survived`` or ``timeout``."""
    env = {
        **os.environ,
        "MUTANT_UNDER_TEST": mutant,
        "PY_IGNORE_IMPORTMISMATCH": "1",
        "PYTHONPATH": str(plugin_dir),
    }
    only = [] if every_test else ["-p", "host_only"]
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *only, "-rf", *files]
    started = time.monotonic()
    try:
        done = subprocess.run(command, cwd=MUTANTS, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", "", time.monotonic() - started
    seconds = time.monotonic() - started
    if done.returncode == 0:
        return "survived", "", seconds
    failed = next((line.split()[1] for line in done.stdout.splitlines() if line.startswith("FAILED ")), "")
    if done.returncode == 1 and failed:
        return "killed", failed, seconds
    # 2-5: pytest could not run the tests at all; that judges nothing, so it must not count as a kill.
    raise RuntimeError(f"pytest exited {done.returncode} for {mutant}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--only", default="*", help="a glob over mutant names (default: every one)")
    parser.add_argument(
        "--tests", nargs="+", metavar="FILE", help="these test files only (default: every file mutmut runs)"
    )
    parser.add_argument(
        "--every-test",
        action="store_true",
        help="run every test of the files, not only the provider-host ones (to re-judge after tests changed)",
    )
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant")
    args = parser.parse_args(argv)

    if not MUTANTS.is_dir():
        parser.error("no mutants/ folder: run `mutmut run` first (make mutation does both)")
    verdicts = mutmut_verdicts()
    todo = sorted(name for name, code in verdicts.items() if code in UNJUDGED and fnmatch.fnmatchcase(name, args.only))
    path = RESULTS[args.every_test]
    results: dict[str, dict[str, object]] = json.loads(path.read_text()) if path.exists() else {}
    killed = {name for name, result in merged().items() if result["verdict"] in ("killed", "timeout")}
    todo = [name for name in todo if name not in results and name not in killed]
    plugin_dir = MUTANTS / ".host-pass"
    plugin_dir.mkdir(exist_ok=True)
    (plugin_dir / "host_only.py").write_text(PLUGIN)
    files = args.tests or test_files()
    which = "every test" if args.every_test else "the provider-host tests"
    print(f"{len(todo)} mutants to judge with {which} of {len(files)} files", file=sys.stderr)
    # As mutmut does: the tests must pass with no mutant, or every verdict below would be a false kill.
    if todo:
        clean, failed, _ = judge("", files, args.timeout, plugin_dir, args.every_test)
        if clean != "survived":
            parser.error(f"the tests fail with no mutant ({clean} {failed}): fix them before judging mutants")

    def one(name: str) -> None:
        verdict, test, seconds = judge(name, files, args.timeout, plugin_dir, args.every_test)
        results[name] = {"mutmut": verdicts[name], "verdict": verdict, "killed_by": test, "seconds": round(seconds, 1)}
        path.write_text(json.dumps(results, indent=1, sort_keys=True))
        print(f"{verdict:8} {seconds:6.1f} s  {name}", file=sys.stderr, flush=True)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(one, todo))

    report(verdicts, merged())
    return 0


def merged() -> dict[str, dict[str, object]]:
    """Every pass's verdicts, a kill in any of them winning."""
    found: dict[str, dict[str, object]] = {}
    for path in RESULTS.values():
        for name, result in (json.loads(path.read_text()) if path.exists() else {}).items():
            if name not in found or result["verdict"] in ("killed", "timeout"):
                found[name] = result
    return found


def report(verdicts: dict[str, int | None], results: dict[str, dict[str, object]]) -> None:
    """The kill rate of every pass together, by module, and every mutant still alive."""
    columns = ("mutants", "killed", "survived", "other", "not run")
    by_module: dict[str, dict[str, int]] = {}
    alive = []
    for name, code in verdicts.items():
        row = by_module.setdefault(name.split(".x", 1)[0], dict.fromkeys(columns, 0))
        row["mutants"] += 1
        verdict = results.get(name, {}).get("verdict")
        if code is None:
            row["not run"] += 1
        elif code in KILLED or verdict in ("killed", "timeout"):
            row["killed"] += 1
        elif code in UNJUDGED:
            row["survived"] += 1
            alive.append(name)
        else:  # skipped, caught by the type check, suspicious: judged neither way
            row["other"] += 1
    total = {key: sum(row[key] for row in by_module.values()) for key in columns}
    for module, row in [*sorted(by_module.items()), ("all", total)]:
        decided = row["killed"] + row["survived"]
        rate = f"{100 * row['killed'] / decided:.1f} %" if decided else "-"
        print(f"{module:28} " + "  ".join(f"{row[key]:5} {key}" for key in columns) + f"  kill rate {rate}")
    if alive:
        print(f"\nstill alive after every pass ({len(alive)}); `mutmut show NAME` shows one:")
        for name in sorted(alive):
            note = "" if name in results else "  (not yet judged by the second pass)"
            print(f"  {name}{note}")


if __name__ == "__main__":
    raise SystemExit(main())
