"""The CLI output shown in the READMEs, captured from real runs of the real Pulumi CLI against the sandbox.

A captured block is the fenced block right after a line ``<!-- captured: NAME -->`` in a Markdown file;
``SCENARIOS[NAME]`` is the run that produces it. To capture them all again (after a change to what the CLI
prints, a new example, a new CLI version)::

    .venv/bin/python -m tests.captured

``tests/test_captured_outputs.py`` runs every scenario and fails when a block no longer matches its fresh run,
once ids, numbers, timings and temporary paths are set aside (``normalized``).
"""

from __future__ import annotations

import importlib.util
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx

from oppie_pulumi.sandbox import SandboxConfig, SandboxServer, serve

from .realcli import EXAMPLES, ROOT, Project
from .support import TOKEN

MARKER = re.compile(r"^<!-- captured: ([\w-]+) -->\n```[a-z]*\n(.*?)^```\n", re.MULTILINE | re.DOTALL)
DOCUMENTS = [ROOT / "README.md", *sorted(EXAMPLES.glob("*/README.md"))]
_VOLATILE = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<id>"),
    (re.compile(r"\+1555\d{7}"), "<number>"),
    (re.compile(r"PN[0-9a-f]{32}"), "<sid>"),
    (re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+Z"), "<time>"),
    (re.compile(r"\(\d+(\.\d+)?m?s\)"), "(<t>)"),
    (re.compile(r"Duration: \S+"), "Duration: <t>"),
    (re.compile(r"http://127\.0\.0\.1:\d+"), "http://127.0.0.1:<port>"),
]


def normalized(text: str) -> str:
    """``text`` without what differs between two runs: ids, numbers, times, ports, progress dots."""
    lines = [line.rstrip() for line in text.splitlines() if not re.fullmatch(r"\s*@ \w+\.*\s*", line)]
    out = "\n".join(lines).strip()
    for pattern, placeholder in _VOLATILE:
        out = pattern.sub(placeholder, out)
    # Resources are created in parallel, so progress lines come in any order: compare them as a multiset.
    return "\n".join(sorted(out.splitlines()))


def _example(name: str, tmp: Path, sandbox: SandboxServer) -> Project:
    project = Project.example(name, tmp, stack="dev")
    project.configure(sandbox.url, TOKEN)
    return project


def _up(name: str) -> Callable[[Path, SandboxServer], str]:
    def run(tmp: Path, sandbox: SandboxServer) -> str:
        return _example(name, tmp, sandbox).up().stdout

    return run


def _root_up(tmp: Path, sandbox: SandboxServer) -> str:
    project = Project.root(tmp, stack="dev")
    project.configure(sandbox.url, TOKEN)
    return project.up().stdout


def _adopt_up(tmp: Path, sandbox: SandboxServer) -> str:
    project = _example("adopt-existing", tmp, sandbox)
    spec = importlib.util.spec_from_file_location("seed_sandbox", EXAMPLES / "adopt-existing" / "seed_sandbox.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for key, agent in module.seed(sandbox.url, TOKEN).items():
        project.config_set(key, agent["id"])
    return project.up().stdout


def _fleet_error(tmp: Path, sandbox: SandboxServer) -> str:
    project = _example("fleet-from-file", tmp, sandbox)
    broken = (EXAMPLES / "fleet-from-file" / "agents.yaml").read_text() + (
        "\n- resource: billing-eu\n  name: Billing (EU)\n  model: gpt-4\n  handoff_phone_number: 14155550123\n"
    )
    (project.dir / "agents.yaml").write_text(broken)
    failed = project.run("preview", expect=None)
    assert failed.returncode != 0
    return "\n".join(line for line in (failed.stdout + failed.stderr).splitlines() if "agents.yaml" in line)


def _drift_report(tmp: Path, sandbox: SandboxServer) -> str:
    """The root stack deployed, then an edit in the dashboard, an agent made there, and `oppie-pulumi drift`."""
    project = Project.root(tmp, stack="dev")
    project.configure(sandbox.url, TOKEN)
    project.up()
    support = project.resources()["support-line"]["id"]
    with httpx.Client(base_url=sandbox.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as api:
        api.patch(f"/phone/{support}", json={"first_message": "Edited in the dashboard"}).raise_for_status()
        api.post("/phone", json={"name": "Made in the dashboard", "type": "outbound"}).raise_for_status()
    review = project.oppie("drift", "--stack", "dev")
    assert review.returncode == 2, review.stdout + review.stderr
    return f"$ oppie-pulumi drift --stack dev\n{review.stdout}"


SCENARIOS: dict[str, Callable[[Path, SandboxServer], str]] = {
    "root-up": _root_up,
    "quickstart-up": _up("quickstart"),
    "outbound-up": _up("outbound-data-collection"),
    "pipeline-up": _up("pipeline"),
    "fleet-up": _up("fleet-from-file"),
    "fleet-error": _fleet_error,
    "adopt-up": _adopt_up,
    "drift-report": _drift_report,
}


def blocks() -> dict[str, tuple[Path, str]]:
    """Every captured block: ``{name: (document, text)}``."""
    found: dict[str, tuple[Path, str]] = {}
    for document in DOCUMENTS:
        for match in MARKER.finditer(document.read_text()):
            assert match.group(1) not in found, f"captured block {match.group(1)} appears twice"
            found[match.group(1)] = (document, match.group(2))
    return found


def capture(name: str) -> str:
    """Run scenario ``name`` against a fresh sandbox and return what the CLI printed."""
    config = SandboxConfig(token=TOKEN, db_path=":memory:", rate_limit_per_minute=None)
    with serve(config) as sandbox, tempfile.TemporaryDirectory() as tmp:
        return SCENARIOS[name](Path(tmp), sandbox).strip() + "\n"


def main(argv: list[str]) -> int:
    for name, (document, _) in blocks().items():
        text = document.read_text()
        match = next(m for m in MARKER.finditer(text) if m.group(1) == name)
        start, end = match.span(2)
        document.write_text(text[:start] + capture(name) + text[end:])
        print(f"captured {name} into {document.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
