"""``oppie-pulumi generate``: a program that adopts every live agent round-trips with no remote change.

Generate from a seeded sandbox, run the program under the mock monitor, ``up`` through the real host:
every agent is adopted with its id and phone number, without a POST or a PATCH; ``up`` again: nothing.
"""

from __future__ import annotations

import ast
import re
import runpy
import socket
from pathlib import Path
from typing import Any

import httpx
import pulumi
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oppie_pulumi_testing import Registration, StateEntry, run_program

from oppie_pulumi._generate import logical_name, python_literal, render_program
from oppie_pulumi.cli import main
from oppie_pulumi.sandbox import SandboxServer

from .support import TOKEN, StateFactory, examples

PHONE_AGENT = "pulumi-python:dynamic/oppie:PhoneAgent"

# Defaults and non-defaults of every field, lists and nulls, and names that need escaping.
SEED = [
    {"name": "Support"},
    {"name": "Support", "type": "outbound", "actionIds": [], "interruptible": False},
    {
        "name": "Renewals",
        "type": "outbound",
        "language": "fr",
        "accent": "parisian",
        "handoff_phone_number": "+33140000000",
        "actionIds": ["act_1", "act_2"],
        "instructions": ["Ask whether they will renew.", ""],
        "data_collection_fields": ["will_renew", "score"],
        "data_collection_webhook_url": "https://hooks.example.com/renewals?sig=abc",
        "model": "oppie-vox-turbo",
        "first_message": 'Hi, it\'s "Acme".\nGot a minute?',
        "voice_id": "v_42",
    },
    {"name": "Café \u202eNord\t\\ 🚀", "instructions": [], "data_collection_fields": None, "model": "oppie-vox-2"},
    {"name": "class", "language": "en"},
    {"name": "123"},
]


def seed(sandbox: SandboxServer) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    created = []
    for body in SEED:
        response = httpx.post(f"{sandbox.url}/phone", json=body, headers=headers)
        response.raise_for_status()
        created.append(response.json())
    return created


def generate(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setenv("OPPIE_API_TOKEN", TOKEN)
    monkeypatch.setenv("OPPIE_MAX_RETRIES", "0")
    return main(["generate", "--base-url", sandbox.url, *args])


def run_file(path: Path) -> list[Registration]:
    return run_program(lambda: runpy.run_path(str(path), run_name="__main__"))


def test_generated_program_adopts_every_agent_unchanged_and_a_second_up_changes_nothing(
    sandbox: SandboxServer, engine_for: StateFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seeded = seed(sandbox)
    # A newer API version: language comes back as ["fr"], which the program must still declare as "fr".
    sandbox.set_faults(language_as_list=True)
    program = tmp_path / "__main__.py"
    assert generate(sandbox, monkeypatch, "--out", str(program)) == 0

    registrations = run_file(program)
    assert sorted(r.inputs["adopt_id"] for r in registrations) == sorted(a["id"] for a in seeded)
    sandbox.reset_stats()
    state: dict[str, StateEntry] = {}
    with engine_for(state) as engine:
        summary = engine.up(registrations)
    assert not summary.failed and not summary.check_failures, (summary.failed, summary.check_failures)
    assert len(summary.created) == len(SEED)
    # Adopted as they are: same ids and numbers, and not one write.
    assert {e.id: e.outputs["phone_number"] for e in state.values()} == {a["id"]: a["phone_number"] for a in seeded}
    assert set(sandbox.stats()["by_route"]) == {"GET /phone"}
    assert [a["updated_at"] for a in sandbox.agents()] == [a["updated_at"] for a in seeded]

    sandbox.reset_stats()
    with engine_for(state) as engine:
        summary = engine.up(run_file(program))
        assert summary.changes == 0 and len(summary.same) == len(SEED)
        assert engine.refresh().changes == 0
        assert engine.preview(run_file(program)).changes == 0
    assert set(sandbox.stats()["by_route"]) <= {"GET /phone"}


def test_generated_program_declares_only_what_differs_from_the_api_defaults(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(sandbox)
    assert generate(sandbox, monkeypatch) == 0
    out, err = capsys.readouterr()
    calls = _calls(out)
    assert calls[0] == ("support", {"name": "Support"})
    assert calls[1] == (
        "support-2",
        {"name": "Support", "type": "outbound", "interruptible": False, "action_ids": []},
    )
    assert calls[3][1]["instructions"] == [] and "data_collection_fields" not in calls[3][1]
    assert calls[2][1]["first_message"] == 'Hi, it\'s "Acme".\nGot a minute?'
    assert [name for name, _ in calls] == ["support", "support-2", "renewals", "cafe-nord", "class", "123"]
    assert f"wrote 6 agents from {sandbox.url} to standard output" in err
    assert TOKEN not in out + err


def _calls(source: str) -> list[tuple[str, dict[str, Any]]]:
    """``(logical name, arguments without adopt_id)`` of every PhoneAgent call, read back as literals."""
    calls = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "PhoneAgent":
            kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg != "adopt_id"}
            calls.append((ast.literal_eval(node.args[0]), kwargs))
    return calls


def test_names_with_quotes_unicode_and_newlines_generate_valid_python_that_keeps_them_exactly() -> None:
    names = ["Q\"uo'te", "new\nline\r\n", "Café Nord", "\u202eevil\u2066", "\\x00 raw\\", '"""', "'''", "x" * 300, ""]
    agents = [
        {"id": f"id-{n}", "name": name, "created_at": f"2026-01-01T00:00:{n:02d}Z"} for n, name in enumerate(names)
    ]
    agents.append({"id": "id-'\"\n", "name": "Odd id", "created_at": "2026-01-02T00:00:00Z"})
    program = render_program(agents, source='https://api.example.com/"""\n#')
    compile(program.source, "generated.py", "exec")
    calls = _calls(program.source)
    assert [kwargs["name"] for _, kwargs in calls] == [*names, "Odd id"]
    logical = [name for name, _ in calls]
    assert len(set(logical)) == len(logical)
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name) for name in logical)
    # No raw control or bidirectional character reaches the file: all are escaped.
    assert all(ch.isprintable() or ch == "\n" for ch in program.source)
    # The nameless agent is left to a person, loudly.
    assert any("name: the live agent has none" in w for w in program.warnings)
    # As generated, the program stops at the nameless agent, in one line (PhoneAgent judges what it is given).
    with pytest.raises(pulumi.RunError, match=r"^PhoneAgent 'agent-3': name: String should have at least 1 character"):
        run_program(lambda: exec(compile(program.source, "generated.py", "exec"), {}))
    # Once a person sets the name the FIXME asks for, it registers (in whatever order the SDK sends them) with
    # exactly the names and ids the API gave.
    assert program.source.count('name="",') == 1
    source = program.source.replace('name="",', 'name="Set by a person",')
    calls = _calls(source)
    registrations = run_program(lambda: exec(compile(source, "generated.py", "exec"), {}))
    declared = {r.name: (r.inputs.get("name"), r.inputs["adopt_id"]) for r in registrations if r.type == PHONE_AGENT}
    assert declared == {
        name: (kwargs["name"], agent["id"]) for (name, kwargs), agent in zip(calls, agents, strict=True)
    }


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.text(), min_size=1, max_size=4))
def test_any_text_round_trips_through_a_literal_and_a_logical_name(values: list[str]) -> None:
    for value in values:
        assert ast.literal_eval(python_literal(value)) == value
    assert ast.literal_eval(python_literal(values)) == values
    taken: set[str] = set()
    names = [logical_name(value, taken) for value in values]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name) for name in names)


def test_agents_that_phone_agent_would_refuse_are_marked_fixme() -> None:
    agents = [
        {"id": "a1", "name": "Live", "model": "oppie-vox-9", "handoff_phone_number": "555-0100"},
        {"id": "a2", "name": "Newer", "model": "oppie-vox-livekit"},  # a newer API's model: accepted
    ]
    program = render_program(agents, source="https://api.open.cx")
    compile(program.source, "generated.py", "exec")
    assert len(program.warnings) == 2
    assert all("agent a1" in warning for warning in program.warnings)
    assert "FIXME (PhoneAgent will refuse this agent as it is) model: must be one of" in program.source
    assert "handoff_phone_number: must be an E.164 number" in program.source


def test_generate_without_a_token_exits_2_saying_how_to_set_it(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OPPIE_API_TOKEN", raising=False)
    assert main(["generate", "--base-url", sandbox.url]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "no API token: the environment variable OPPIE_API_TOKEN is not set" in err
    assert "--token-env" in err
    assert sandbox.stats()["requests"] == 0


def test_generate_reads_the_token_from_the_variable_named_by_token_env(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(sandbox)
    monkeypatch.delenv("OPPIE_API_TOKEN", raising=False)
    monkeypatch.setenv("PROD_PHONE_TOKEN", TOKEN)
    assert main(["generate", "--base-url", sandbox.url, "--token-env", "PROD_PHONE_TOKEN"]) == 0
    assert len(_calls(capsys.readouterr().out)) == len(SEED)


def test_generate_with_a_wrong_token_exits_1_with_the_api_error_and_never_prints_the_token(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = "wrong-" + TOKEN
    monkeypatch.setenv("OPPIE_API_TOKEN", wrong)
    assert main(["generate", "--base-url", sandbox.url]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "list phone agents failed: GET /phone answered 401" in err
    assert wrong not in err and TOKEN not in err


def test_generate_against_an_unreachable_api_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPPIE_API_TOKEN", TOKEN)
    monkeypatch.setenv("OPPIE_MAX_RETRIES", "0")
    # A port that was free a moment ago: nothing listens, the connection is refused.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["generate", "--base-url", f"http://127.0.0.1:{port}"]) == 1
    assert "list phone agents failed: GET /phone failed" in capsys.readouterr().err


def test_generate_with_a_bad_base_url_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPPIE_API_TOKEN", TOKEN)
    assert main(["generate", "--base-url", "ftp://example.com"]) == 2
    assert "must be an http(s) URL" in capsys.readouterr().err


def test_generate_refuses_to_overwrite_a_file_without_force_and_writes_into_a_directory(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(sandbox)
    existing = tmp_path / "__main__.py"
    existing.write_text("# hand-written\n")
    assert generate(sandbox, monkeypatch, "--out", str(tmp_path)) == 2
    assert "exists; pass --force to overwrite it" in capsys.readouterr().err
    assert existing.read_text() == "# hand-written\n"
    assert generate(sandbox, monkeypatch, "--out", str(tmp_path), "--force") == 0
    first = existing.read_text()
    assert len(_calls(first)) == len(SEED)
    # Deterministic: generating again gives the same file.
    assert generate(sandbox, monkeypatch, "--out", str(existing), "--force") == 0
    assert existing.read_text() == first
    assert not list(tmp_path.glob("*.partial"))


def test_generate_with_no_agents_writes_a_program_that_declares_none(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert generate(sandbox, monkeypatch) == 0
    out, err = capsys.readouterr()
    assert _calls(out) == [] and "wrote 0 agents" in err
    compile(out, "generated.py", "exec")


def test_the_console_script_shows_usage_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and "oppie-pulumi 0.1.0" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2


# -- token hygiene on the command line (issue 11, item 5) -----------------------------------------------------

SECRET_ARGUMENT = "sandbox-token-5ecret"


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["generate", "--token", SECRET_ARGUMENT], id="abbreviation of --token-env"),
        pytest.param(["generate", f"--token={SECRET_ARGUMENT}"], id="abbreviation with ="),
        pytest.param(["generate", "--api-token", SECRET_ARGUMENT], id="unknown option"),
        pytest.param(["generate", SECRET_ARGUMENT], id="stray value"),
        pytest.param([SECRET_ARGUMENT], id="unknown command"),
        pytest.param(["generate", "--token-env", SECRET_ARGUMENT], id="a token where its variable's name goes"),
    ],
)
def test_generate_takes_no_abbreviation_and_never_echoes_an_argument_that_may_be_a_secret(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """Regression: `--token sandbox-token` was taken as --token-env, and the error printed the token."""
    monkeypatch.delenv("OPPIE_API_TOKEN", raising=False)
    monkeypatch.setenv("OPPIE_BASE_URL", sandbox.url)
    try:
        status = main(argv)
    except SystemExit as exited:
        status = exited.code  # argparse's own usage errors
    assert status == 2
    out, err = capsys.readouterr()
    assert SECRET_ARGUMENT not in out + err
    assert "5ecret" not in out + err
    assert "never shown" in err
    assert sandbox.stats()["requests"] == 0


def test_generate_out_with_a_trailing_slash_writes_into_that_new_folder(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Regression: `--out DIR/` with a missing DIR wrote a file named DIR."""
    seed(sandbox)
    folder = tmp_path / "stack"
    assert generate(sandbox, monkeypatch, "--out", f"{folder}/") == 0
    assert folder.is_dir()
    assert len(_calls((folder / "__main__.py").read_text())) == len(SEED)


def test_generate_with_a_base_url_holding_credentials_never_prints_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPPIE_API_TOKEN", TOKEN)
    assert main(["generate", "--base-url", f"ftp://user:{SECRET_ARGUMENT}@example.com"]) == 2
    err = capsys.readouterr().err
    assert "must be an http(s) URL" in err and SECRET_ARGUMENT not in err
