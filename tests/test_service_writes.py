"""``AgentService.update`` and ``delete``: a write whose answer was lost looks whether it landed before it fails,
a write that could not be sent says so without a look, and an agent deleted elsewhere points at the fix (issue 11,
items 4 and 6). Real HTTP to the sandbox, the provider in-process.
"""

from __future__ import annotations

import httpx
import pytest

from oppie_pulumi import NotFound, PhoneAgentProvider, ServerError, TransportError
from oppie_pulumi.sandbox import SandboxServer

from .support import TOKEN, closed_port_url, configured_provider, created_agent


def configured(base_url: str, **config: str) -> PhoneAgentProvider:
    return configured_provider(base_url, **{"maxRetries": "2", **config})


# -- errors that point at the fix (issue 11, item 6) -----------------------------------------------------------


def test_an_update_of_an_agent_deleted_elsewhere_says_to_run_pulumi_refresh(sandbox: SandboxServer) -> None:
    provider = configured(sandbox.url)
    agent_id, outs = created_agent(provider)
    httpx.delete(f"{sandbox.url}/phone/{agent_id}", headers={"Authorization": f"Bearer {TOKEN}"})

    with pytest.raises(NotFound) as caught:
        provider.update(agent_id, outs, provider.check(outs, {"name": "Support", "voice_id": "v2"}).inputs)

    message = str(caught.value)
    assert f"update phone agent 'Support' ({agent_id}) failed: PATCH /phone/{agent_id} answered 404" in message
    assert "deleted outside Pulumi" in message and "`pulumi refresh`" in message
    assert (caught.value.status_code, caught.value.operation) == (404, f"update phone agent 'Support' ({agent_id})")


def test_a_delete_that_could_not_be_sent_says_so() -> None:
    """Regression: it said "check whether the delete of phone agent ... landed failed", about a list call."""
    provider = configured(closed_port_url(), maxRetries="0")

    with pytest.raises(TransportError) as caught:
        provider.delete("agt_1", {"name": "Support"})

    message = str(caught.value)
    assert message.startswith("delete phone agent 'Support' (agt_1) failed: DELETE /phone/agt_1 failed (ConnectError")
    assert "never reached the API" in message and "check whether" not in message
    assert caught.value.method == "DELETE" and caught.value.may_have_reached_api is False


def test_an_update_that_could_not_be_sent_says_so_without_a_look() -> None:
    provider = configured(closed_port_url(), maxRetries="0")
    olds = {"name": "Support", "voice_id": None}

    with pytest.raises(TransportError) as caught:
        provider.update("agt_1", olds, provider.check(olds, {"name": "Support", "voice_id": "v2"}).inputs)

    assert str(caught.value).startswith("update phone agent 'Support' (agt_1) failed: PATCH /phone/agt_1 failed")
    assert caught.value.method == "PATCH"


# -- updates and deletes whose answer was lost: look before failing -------------------------------------------


def test_an_update_answered_5xx_after_it_landed_succeeds_after_a_look(sandbox: SandboxServer) -> None:
    provider = configured(sandbox.url, maxRetries="0")
    agent_id, outs = created_agent(provider)
    sandbox.set_faults(fail_after_apply_next=1)
    sandbox.reset_stats()

    updated = provider.update(agent_id, outs, provider.check(outs, {"name": "Support", "voice_id": "v2"}).inputs)

    assert updated.outs is not None and updated.outs["voice_id"] == "v2"
    assert sandbox.stats()["by_route"] == {"PATCH /phone/{id}": 1, "GET /phone": 1}


def test_an_update_that_did_not_land_fails_with_its_own_error_after_a_look(sandbox: SandboxServer) -> None:
    provider = configured(sandbox.url, maxRetries="0")
    agent_id, outs = created_agent(provider)
    sandbox.set_faults(fail_next=1)

    with pytest.raises(ServerError) as caught:
        provider.update(agent_id, outs, provider.check(outs, {"name": "Support", "voice_id": "v2"}).inputs)

    assert str(caught.value).startswith(f"update phone agent 'Support' ({agent_id}) failed: PATCH /phone/{agent_id}")
    assert sandbox.agents()[0]["voice_id"] is None


def test_an_update_answered_with_an_empty_body_reads_the_agent_back(sandbox: SandboxServer) -> None:
    provider = configured(sandbox.url)
    agent_id, outs = created_agent(provider)
    sandbox.set_faults(patch_empty_body=True)
    sandbox.reset_stats()

    updated = provider.update(agent_id, outs, provider.check(outs, {"name": "Support", "voice_id": "v2"}).inputs)

    assert updated.outs is not None and updated.outs["voice_id"] == "v2" and updated.outs["phone_number"]
    assert sandbox.stats()["by_route"] == {"PATCH /phone/{id}": 1, "GET /phone": 1}


def test_a_delete_answered_5xx_after_it_landed_succeeds_after_a_look(sandbox: SandboxServer) -> None:
    provider = configured(sandbox.url, maxRetries="0")
    agent_id, outs = created_agent(provider)
    sandbox.set_faults(fail_after_apply_next=1)
    sandbox.reset_stats()

    provider.delete(agent_id, outs)

    assert sandbox.agents() == []
    assert sandbox.stats()["by_route"] == {"DELETE /phone/{id}": 1, "GET /phone": 1}


def test_a_delete_that_did_not_land_fails_with_its_own_error_after_a_look(sandbox: SandboxServer) -> None:
    provider = configured(sandbox.url, maxRetries="0")
    agent_id, outs = created_agent(provider)
    sandbox.set_faults(fail_next=1)

    with pytest.raises(ServerError) as caught:
        provider.delete(agent_id, outs)

    assert str(caught.value).startswith(f"delete phone agent 'Support' ({agent_id}) failed: DELETE /phone/{agent_id}")
    assert [agent["id"] for agent in sandbox.agents()] == [agent_id]


def test_an_update_sends_a_one_code_language_list_as_the_code(sandbox: SandboxServer) -> None:
    """The API's bodies document one language code; a declared list of one is that code."""
    provider = configured(sandbox.url)
    agent_id, outs = created_agent(provider)
    sandbox.reset_stats()

    provider.update(agent_id, outs, provider.check(outs, {"name": "Support", "language": ["fr"]}).inputs)

    assert [write["body"] for write in sandbox.writes() if write["method"] == "PATCH"] == [{"language": "fr"}]


def test_an_update_that_could_not_be_sent_fails_without_looking_for_the_agent(sandbox: SandboxServer) -> None:
    provider = configured(sandbox.url)
    _, outs = created_agent(provider)
    sandbox.reset_stats()

    with pytest.raises(TransportError, match="could not be sent"):
        provider.update("ph_1\nX", outs, provider.check(outs, {"name": "Support", "voice_id": "v2"}).inputs)

    assert sandbox.stats()["requests"] == 0


def test_an_update_that_kept_failing_of_an_agent_deleted_meanwhile_raises_the_api_error(sandbox: SandboxServer) -> None:
    """After the retries, the look finds no agent: the error is the API's, not a crash on the missing agent."""
    provider = configured(sandbox.url)  # maxRetries 2: three PATCH attempts
    agent_id, outs = created_agent(provider)
    httpx.delete(f"{sandbox.url}/phone/{agent_id}", headers={"Authorization": f"Bearer {TOKEN}"})
    sandbox.set_faults(fail_next=3)

    with pytest.raises(ServerError, match="answered 503"):
        provider.update(agent_id, outs, provider.check(outs, {"name": "Support", "voice_id": "v2"}).inputs)


def test_an_update_of_a_one_code_language_list_that_landed_unanswered_succeeds_after_a_look(
    sandbox: SandboxServer,
) -> None:
    """The look compares the live agent's values with those sent, equivalent spellings equal: ["fr"] is "fr"."""
    provider = configured(sandbox.url, maxRetries="0")
    agent_id, outs = created_agent(provider)
    sandbox.set_faults(fail_after_apply_next=1)

    updated = provider.update(agent_id, outs, provider.check(outs, {"name": "Support", "language": ["fr"]}).inputs)

    assert updated.outs is not None and updated.outs["language"] == "fr"


# -- a state an earlier version wrote (no model) ----------------------------------------------------------------


def test_an_update_with_nothing_to_send_completes_an_old_state_from_the_live_agent(sandbox: SandboxServer) -> None:
    """What the plugin's update does for a dynamic state moved to it by alias: no PATCH, one read."""
    provider = configured(sandbox.url)
    agent_id, outs = created_agent(provider)
    old = {key: value for key, value in outs.items() if key != "model"}
    sandbox.reset_stats()

    updated = provider.update(agent_id, old, provider.check(old, {"name": "Support"}).inputs)

    assert updated.outs is not None and updated.outs["model"] == "oppie-vox"
    assert sandbox.stats()["by_route"] == {"GET /phone": 1}, "nothing written: only the state completed"
    assert sandbox.writes() == []


def test_completing_an_old_state_of_an_agent_deleted_elsewhere_says_so_and_how_to_fix_it(
    sandbox: SandboxServer,
) -> None:
    provider = configured(sandbox.url)
    agent_id, outs = created_agent(provider)
    with httpx.Client(base_url=sandbox.url, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        api.delete(f"/phone/{agent_id}").raise_for_status()
    old = {key: value for key, value in outs.items() if key != "model"}

    with pytest.raises(NotFound) as caught:
        provider.update(agent_id, old, provider.check(old, {"name": "Support"}).inputs)

    assert str(caught.value).startswith(
        f"update phone agent 'Support' ({agent_id}) failed: the agent disappeared right after the update"
    )
    assert "pulumi refresh" in str(caught.value)


def test_an_update_with_nothing_to_send_on_a_current_state_calls_nothing(sandbox: SandboxServer) -> None:
    """Only a state without model (an old one) needs the live agent; a current one already has every output."""
    provider = configured(sandbox.url)
    agent_id, outs = created_agent(provider)
    sandbox.reset_stats()

    updated = provider.update(agent_id, outs, provider.check(outs, {"name": "Support"}).inputs)

    assert updated.outs is not None and updated.outs["phone_number"] == outs["phone_number"]
    assert sandbox.stats()["requests"] == 0
