"""The docs-as-tests tier: every shell block of the user docs runs as written (``tests/docblocks.py`` says how).

The documents are README.md, examples/README.md, each example's README and docs/plugin.md. A block that stops
working fails CI, as a stale captured output does (``test_captured_outputs.py``). A block that cannot run here
is marked in its document with the reason, and there must stay few of them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from . import docblocks
from .realcli import ROOT, pulumi_bin

# At most this many whole blocks are marked "not runnable here": a marked block is an untested block.
MOST_NOT_RUNNABLE = 2


@pytest.mark.realcli
@pytest.mark.timeout(2400)
def test_every_shell_block_of_the_user_docs_runs_as_written(tmp_path: Path) -> None:
    pulumi_bin()  # the tier needs the pinned CLI (fails under CI when it is missing)
    session = docblocks.open_session(tmp_path)
    ran = [block for block in docblocks.run_documents(session, docblocks.documents(session.root))]
    assert sum(block.mode != "not runnable here" for block in ran) >= 12
    # The YAML host sits beside the CLI, as in Pulumi's releases: no "using pulumi-language-yaml from $PATH".
    assert "from $PATH" not in session.log.read_text()


def test_the_user_docs_mark_few_blocks_as_not_runnable_and_say_why() -> None:
    every = [block for document in docblocks.documents() for block in docblocks.blocks(document)]
    marked = [block for block in every if block.mode == "not runnable here"]
    assert len(marked) <= MOST_NOT_RUNNABLE, [block.where() for block in marked]
    assert all(block.reason for block in marked)
    assert len(every) - len(marked) >= 12


def test_a_block_runs_with_the_free_port_and_yes_where_pulumi_needs_it_and_nothing_else_changed() -> None:
    block = docblocks.Block(
        ROOT / "README.md",
        1,
        "pulumi config set oppie:baseUrl http://127.0.0.1:8787\npulumi up\npulumi destroy --yes\n"
        "pulumi preview --diff   # no change\n  pulumi refresh --run-program  # indented\nmake test\n",
        "run",
        skip="make test",
    )
    assert block.script(41234).splitlines() == [
        "pulumi config set oppie:baseUrl http://127.0.0.1:41234",
        "pulumi up --yes",
        "pulumi destroy --yes",
        "pulumi preview --diff   # no change",
        "  pulumi refresh --yes --run-program  # indented",
    ]


def _document(tmp: Path, *blocks: str, before: str = "") -> Path:
    path = tmp / "doc.md"
    path.write_text("# A doc\n\n" + "".join(f"{before}```sh\n{text}```\n\nSome prose.\n\n" for text in blocks))
    return path


def _session(tmp: Path) -> docblocks.Session:
    root = tmp / "root"
    (root / "sub").mkdir(parents=True)
    state = tmp / "state"
    state.mkdir()
    (state / "env").write_text("")
    (state / "cwd").write_text(f"{root}\n")
    home = tmp / "home"
    home.mkdir()
    return docblocks.Session(root, state, docblocks.session_env(home), 8787, tmp / "log", timeout=60)


def test_a_failing_command_fails_the_tier_naming_the_document_and_line_and_showing_its_output(tmp_path: Path) -> None:
    session = _session(tmp_path)
    document = _document(session.root, "true\n", "echo before the failure\nfalse\necho never printed\n")
    with pytest.raises(docblocks.BlockFailed) as failed:
        list(docblocks.run_documents(session, [document]))
    message = str(failed.value)
    assert "doc.md:10 exited 1" in message
    assert message.rsplit("### output", 1)[1].strip() == "before the failure"


def test_a_block_starts_where_the_block_before_it_left_and_a_new_document_at_the_root(tmp_path: Path) -> None:
    session = _session(tmp_path)
    first = _document(session.root, "cd sub\nexport LEFT=by-block-one\n", 'test "$LEFT" = by-block-one\npwd > where\n')
    second = session.root / "second.md"
    second.write_text('```bash\ntest "$LEFT" = by-block-one\npwd > where-second\n```\n')
    assert len(list(docblocks.run_documents(session, [first, second]))) == 3
    assert (session.root / "sub" / "where").read_text().strip() == str(session.root / "sub")
    assert (session.root / "where-second").read_text().strip() == str(session.root)


def test_a_block_marked_not_runnable_is_left_out_and_one_in_the_background_is_stopped_at_the_documents_end(
    tmp_path: Path,
) -> None:
    session = _session(tmp_path)
    port = docblocks.free_port()
    document = session.root / "doc.md"
    document.write_text(
        "<!-- docs-test: not runnable here: needs the real API -->\n```sh\nfalse\n```\n\n"
        "<!-- docs-test: in the background: a server -->\n```sh\n"
        f"python3 -m http.server --bind 127.0.0.1 {port}  # --port {port}\n```\n\n"
        f"```sh\ncurl -sf http://127.0.0.1:{port}/ > /dev/null\n```\n"
    )
    ran, servers = [], []
    for block in docblocks.run_documents(session, [document]):
        ran.append(block)
        servers.extend(session.background)
    assert [block.mode for block in ran] == ["not runnable here", "in the background", "run"]
    assert ran[0].reason == "needs the real API"
    assert len(set(servers)) == 1 and servers[0].poll() is not None
