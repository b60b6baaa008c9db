"""``PhoneAgent`` in the user's program: what can be judged before the engine runs is judged there.

Issue "A new user's first hour", 5: an invalid argument reached the CLI as the engine's check failure after
"Resource monitor has terminated, shutting down", and a bad setting (a malformed ``oppie:baseUrl``) as the dynamic
provider host's 20-line traceback with the message on its last line. The program knows the arguments given as plain
values, and the stack's settings, when it declares the resource: it judges them with the core's rules and
``Settings`` and fails with a ``pulumi.RunError``, which the Python language host prints as its message alone.
Arguments not known yet (outputs of other resources) and rules that depend on the resource's state are left to the
provider's check, which stays for every program (other languages, the plugin).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pytest
from oppie_pulumi_testing import Registration, run_program

from oppie_pulumi import PhoneAgent
from oppie_pulumi.sandbox import SandboxServer

from .realcli import Project
from .support import TOKEN

E164 = "must be an E.164 number such as +14155550123: a '+', then 2 to 15 digits 0-9, nothing else"


def declare(config: dict[str, str] | None = None, secret_keys: tuple[str, ...] = (), **args: Any) -> list[Registration]:
    """Run a program declaring PhoneAgent "support" with ``args`` (name "Support" unless given)."""
    args.setdefault("name", "Support")
    return run_program(lambda: PhoneAgent("support", **args), config=config, secret_keys=secret_keys)


def test_an_invalid_argument_fails_the_program_with_one_line_naming_the_resource_and_the_argument() -> None:
    with pytest.raises(pulumi.RunError) as caught:
        declare(handoff_phone_number="555-1234")
    assert str(caught.value) == f"PhoneAgent 'support': handoff_phone_number: {E164}"


def test_several_invalid_arguments_are_listed_one_per_line() -> None:
    with pytest.raises(pulumi.RunError) as caught:
        declare(name="", handoff_phone_number="555-1234", model="gpt-4")
    assert str(caught.value) == (
        "PhoneAgent 'support' has 3 invalid arguments:\n"
        "  name: String should have at least 1 character\n"
        f"  handoff_phone_number: {E164}\n"
        "  model: must be one of 'oppie-vox', 'oppie-vox-turbo' or 'oppie-vox-2' ('oppie-vox-livekit' is kept "
        "only by existing agents that already have it), got 'gpt-4'"
    )


def test_a_secret_argument_is_never_quoted() -> None:
    with pytest.raises(pulumi.RunError) as caught:
        declare(data_collection_webhook_url="hooks.example.com/collect?key=s3cr3t-hook")
    assert "s3cr3t" not in str(caught.value)
    assert str(caught.value).startswith("PhoneAgent 'support': data_collection_webhook_url: must be an http(s) URL")


@pytest.mark.parametrize(
    "args",
    [
        pytest.param({"handoff_phone_number": pulumi.Output.from_input("555-1234")}, id="an output"),
        pytest.param({"instructions": ["Be brief.", pulumi.Output.from_input(3)]}, id="an output in a list"),
        pytest.param({"name": pulumi.Output.secret("")}, id="a secret"),
    ],
)
def test_arguments_not_known_yet_are_left_to_the_providers_check(args: dict[str, Any]) -> None:
    [registration] = declare(**args)
    assert registration.name == "support"


@pytest.mark.parametrize(
    "args",
    [
        # An existing agent may keep it: only check knows whether the resource exists.
        pytest.param({"model": "oppie-vox-livekit"}, id="a model only an existing agent may keep"),
        # An existing resource ignores adopt_id.
        pytest.param({"adopt_id": " "}, id="a blank adopt_id"),
    ],
)
def test_what_depends_on_the_resources_state_is_left_to_the_providers_check(args: dict[str, Any]) -> None:
    [registration] = declare(**args)
    assert registration.name == "support"


@pytest.mark.parametrize("where", ["stack config", "environment"])
def test_a_base_url_that_is_not_a_url_fails_the_program_naming_the_setting(
    where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {}
    if where == "stack config":
        config["oppie:baseUrl"] = "127.0.0.1:8787"
    else:
        monkeypatch.setenv("OPPIE_BASE_URL", "127.0.0.1:8787")
    with pytest.raises(pulumi.RunError) as caught:
        declare(config)
    assert str(caught.value) == (
        "oppie:baseUrl / OPPIE_BASE_URL must be an http(s) URL such as https://api.open.cx, got '127.0.0.1:8787'"
    )


def test_a_token_no_header_can_carry_fails_the_program_without_showing_it() -> None:
    token = "tok_TEST\n9f8e7d6c5b4a"  # a line break pasted into the middle
    with pytest.raises(pulumi.RunError) as caught:
        declare({"oppie:apiToken": token}, secret_keys=("oppie:apiToken",))
    assert "oppie:apiToken / OPPIE_API_TOKEN holds a character no HTTP header can carry" in str(caught.value)
    assert "9f8e7d6c5b4a" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__context__ is None


def test_a_lookup_with_a_bad_setting_fails_the_program_too() -> None:
    with pytest.raises(pulumi.RunError, match="oppie:baseUrl / OPPIE_BASE_URL must be an http"):
        run_program(lambda: PhoneAgent.get("found", "agt_1"), config={"oppie:baseUrl": "ftp://example.com"})


# -- as the CLI shows it ----------------------------------------------------------------------------------------


@pytest.fixture
def project(sandbox: SandboxServer, tmp_path: Path) -> Project:
    project = Project.program(tmp_path)
    project.configure(sandbox.url, TOKEN)
    return project


@pytest.mark.realcli
@pytest.mark.parametrize("command", ["preview", "up"])
def test_an_invalid_argument_is_one_error_line_in_the_cli(project: Project, command: str) -> None:
    project.declare({"support": {"args": {"name": "Support", "handoff_phone_number": "555-1234"}}})
    failed = project.run(*([command, "--yes"] if command == "up" else [command]), expect=None)
    assert failed.returncode != 0
    output = failed.stdout + failed.stderr
    assert f"    error: PhoneAgent 'support': handoff_phone_number: {E164}\n" in failed.stdout, output
    assert "Resource monitor has terminated" not in output, output
    assert "Traceback" not in output and "has a problem" not in output, output


@pytest.mark.realcli
def test_a_base_url_that_is_not_a_url_is_one_error_line_in_the_cli(project: Project) -> None:
    project.declare({"support": {"args": {"name": "Support"}}})
    project.config_set("oppie:baseUrl", "127.0.0.1:8787")
    failed = project.run("preview", expect=None)
    assert failed.returncode != 0
    output = failed.stdout + failed.stderr
    assert (
        "    error: oppie:baseUrl / OPPIE_BASE_URL must be an http(s) URL such as https://api.open.cx, "
        "got '127.0.0.1:8787'\n"
    ) in failed.stdout, output
    assert "Traceback" not in output and "Resource monitor has terminated" not in output, output
    assert TOKEN not in output
