"""The shell blocks of the user docs, run as a new user runs them: the docs-as-tests tier.

A shell block is a fenced block whose language is ``sh``, ``bash`` or ``shell``. The documents are read in
the order a new user meets them (``DOCUMENTS``): README.md, then examples/README.md (its setup is what every
example's README starts from), each example's README, then docs/plugin.md. All their blocks run in one bash
session, block after block, over a throwaway copy of the checkout (tracked and new files; the pinned CLI
build in ``.tools`` is linked, not rebuilt), with a throwaway HOME and PULUMI_HOME: the working directory
and exported variables a block leaves are where the next block starts; each document starts at the copy's
root, as the docs say. A block fails on its first failing command (``set -eo pipefail``).

The text runs as written, with two changes, both what a terminal-less run needs:

- the sandbox's documented port 8787 becomes a free port, in the blocks and in the copy's files;
- ``--yes`` is added to ``pulumi up``, ``destroy``, ``refresh`` and ``import`` where a block has none (Pulumi
  refuses to ask for confirmation without a terminal).

A block may be marked by an HTML comment on the line right before its fence:

- ``<!-- docs-test: not runnable here: REASON -->``: left out (needs the real API, Pulumi Cloud, ...);
- ``<!-- docs-test: in the background: REASON -->``: a server the docs start "in another shell"; it runs while
  the document's later blocks run, and is stopped at the document's end;
- ``<!-- docs-test: skip `COMMAND`: REASON -->``: the block runs without its lines that start with COMMAND.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHELLS = {"sh", "bash", "shell"}
DOC_PORT = "8787"
FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
DIRECTIVE = re.compile(r"<!-- docs-test: (not runnable here|in the background|skip `([^`]+)`): (.+?) -->")
_NEEDS_YES = re.compile(r"^(\s*pulumi (?:up|destroy|refresh|import)\b)(?!.*--yes)(.*)$", re.MULTILINE)
# Variables of the developer's own shell that would change what a block does: the session starts without them.
_UNSET = (
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "PULUMI_BACKEND_URL",
    "PULUMI_CONFIG_PASSPHRASE",
    "PULUMI_ACCESS_TOKEN",
    "PULUMI_HOME",
    "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION",
    "OPPIE_API_TOKEN",
    "OPPIE_BASE_URL",
)


def documents(root: Path = ROOT) -> list[Path]:
    """The user docs whose shell blocks run, in the order a new user follows them."""
    examples = sorted(path for path in (root / "examples").glob("*/README.md"))
    return [root / "README.md", root / "examples" / "README.md", *examples, root / "docs" / "plugin.md"]


@dataclass(frozen=True)
class Block:
    """One shell block of a document: where it is, its text, and how the tier runs it."""

    document: Path
    line: int
    text: str
    mode: str  # "run", "not runnable here", "in the background"
    reason: str = ""
    skip: str = ""

    def where(self, root: Path = ROOT) -> str:
        return f"{self.document.relative_to(root)}:{self.line}"

    def script(self, port: int) -> str:
        """The text this tier runs: the free port for 8787, ``--yes`` where Pulumi needs it, skipped lines out."""
        lines = self.text.replace(DOC_PORT, str(port)).splitlines()
        if self.skip:
            lines = [line for line in lines if not line.strip().startswith(self.skip)]
        return _NEEDS_YES.sub(r"\1 --yes\2", "\n".join(lines)) + "\n"


def blocks(document: Path) -> list[Block]:
    """The shell blocks of ``document``, each with the directive on the line before its fence, if any."""
    text = document.read_text()
    found = []
    for match in FENCE.finditer(text):
        if match.group(1) not in SHELLS:
            continue
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        line = text.count("\n", 0, match.start()) + 2  # the block's first line, after the fence
        directive = DIRECTIVE.fullmatch(before.strip())
        if directive is None:
            found.append(Block(document, line, match.group(2), "run"))
        elif directive.group(2):
            found.append(Block(document, line, match.group(2), "run", directive.group(3), directive.group(2)))
        else:
            found.append(Block(document, line, match.group(2), directive.group(1), directive.group(3)))
    return found


class BlockFailed(AssertionError):
    """A block stopped with a failing command: where it is, its status and the end of what it printed."""


@dataclass
class Session:
    """One bash session over a copy of the checkout: blocks run in it one after the other."""

    root: Path  # the copy of the checkout
    state: Path  # where a block leaves its working directory and exported variables for the next one
    env: dict[str, str]
    port: int
    log: Path
    timeout: float = 900.0
    background: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def run(self, block: Block) -> None:
        if block.mode == "not runnable here":
            return
        script = self.state / "block.sh"
        script.write_text(
            "set -eo pipefail\n"
            f"source {self.state / 'env'}\n"
            f'cd "$(cat {self.state / "cwd"})"\n'
            f"{block.script(self.port)}"
            f"pwd > {self.state / 'cwd'}\n"
            f"export -p > {self.state / 'env'}\n"
        )
        with self.log.open("a") as log:
            log.write(f"\n### {block.where(self.root)}\n{block.script(self.port)}### output\n")
        if block.mode == "in the background":
            self._background(block, script)
            return
        with self.log.open("a") as log:
            status = subprocess.run(
                ["bash", str(script)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=self.timeout,
                check=False,
            ).returncode
        if status != 0:
            tail = "\n".join(self.log.read_text().splitlines()[-60:])
            raise BlockFailed(f"the block at {block.where(self.root)} exited {status}; it printed, at its end:\n{tail}")

    def _background(self, block: Block, script: Path) -> None:
        """Start a block the docs run in another shell; wait until the port it names answers."""
        ran = script.with_name(f"background-{len(self.background)}.sh")
        # The state it leaves is not the session's: the next block starts where this one began.
        ran.write_text("\n".join(script.read_text().splitlines()[:-2]) + "\n")
        with self.log.open("a") as log:
            process = subprocess.Popen(
                ["bash", str(ran)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.background.append(process)
        port = re.search(r"--port (\d+)", block.script(self.port))
        deadline = time.monotonic() + 60
        while port and time.monotonic() < deadline and process.poll() is None:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", int(port.group(1)))) == 0:
                    return
            time.sleep(0.1)
        if process.poll() is not None or port:
            tail = "\n".join(self.log.read_text().splitlines()[-30:])
            raise BlockFailed(f"the background block at {block.where(self.root)} did not start serving:\n{tail}")

    def next_document(self) -> None:
        """Stop what the previous document left running in the background; start again at the copy's root."""
        for process in self.background:
            _stop_group(process)
        self.background.clear()
        (self.state / "cwd").write_text(f"{self.root}\n")


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM a background block's whole process group, and wait until every process of it is gone.

    The shell goes at once; the server it started may take a moment to let go of its port, which the next
    document's server wants.
    """
    deadline = time.monotonic() + 30
    sent = signal.SIGTERM
    while True:
        try:
            os.killpg(process.pid, sent)
        except ProcessLookupError:
            break
        if time.monotonic() > deadline:
            sent = signal.SIGKILL
        process.poll()  # reaps the shell; its children are reaped by init once it is gone
        time.sleep(0.1)
    process.wait(timeout=30)


def copy_checkout(source: Path, target: Path, port: int) -> Path:
    """The checkout's tracked and new files in ``target``, 8787 replaced by ``port``; ``.tools`` linked."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=source,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        origin = source / name
        if not origin.is_file():
            continue
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(origin, destination)
        if DOC_PORT.encode() in (data := origin.read_bytes()):
            destination.write_bytes(data.replace(DOC_PORT.encode(), str(port).encode()))
    if (source / ".tools").exists():
        (target / ".tools").symlink_to((source / ".tools").resolve())
    return target


def session_env(home: Path, source: Path = ROOT) -> dict[str, str]:
    """A new user's environment: a throwaway HOME and PULUMI_HOME, PATH without this checkout's folders.

    Package caches stay the machine's (pip's and npm's), so that a block installing packages downloads
    what a user's warm machine would not.
    """
    env = {key: value for key, value in os.environ.items() if key not in _UNSET}
    env["PATH"] = os.pathsep.join(
        entry for entry in env.get("PATH", "").split(os.pathsep) if entry and not entry.startswith(str(source))
    )
    real_home = Path(os.environ.get("HOME", str(Path.home())))
    env.setdefault("PIP_CACHE_DIR", str(real_home / ".cache" / "pip"))
    env.setdefault("npm_config_cache", str(real_home / ".npm"))
    env.setdefault("GOPATH", str(real_home / "go"))
    env.setdefault("GOCACHE", str(real_home / ".cache" / "go-build"))
    env.update(HOME=str(home), PULUMI_HOME=str(home / ".pulumi-home"), PULUMI_SKIP_UPDATE_CHECK="true")
    return env


def free_port() -> int:
    """A free port below the kernel's ephemeral range, so no process binding port 0 takes it meanwhile.

    The session holds its port for minutes before the sandbox listens on it (``make setup`` first), while the
    engine and its plugins bind ephemeral ports all along.
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for port in random.Random().sample(range(20000, min(low, 32768)), 200):
        with socket.socket() as client, socket.socket() as server:
            if client.connect_ex(("127.0.0.1", port)) == 0:
                continue
            try:
                server.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and the ephemeral range")


def open_session(tmp: Path, source: Path = ROOT) -> Session:
    """A session over a fresh copy of ``source`` in ``tmp``, at the copy's root, with nothing exported yet."""
    port = free_port()
    root = copy_checkout(source, tmp / "oppie-pulumi", port)
    home = tmp / "home"
    home.mkdir()
    state = tmp / "session"
    state.mkdir()
    env = session_env(home, source)
    (state / "env").write_text("")
    (state / "cwd").write_text(f"{root}\n")
    return Session(root, state, env, port, tmp / "session.log")


def run_documents(session: Session, docs: Sequence[Path]) -> Iterator[Block]:
    """Run every block of ``docs`` in order in ``session``; yields each block once it has run (or was left out)."""
    try:
        for document in docs:
            session.next_document()
            for block in blocks(document):
                session.run(block)
                yield block
    finally:
        session.next_document()
