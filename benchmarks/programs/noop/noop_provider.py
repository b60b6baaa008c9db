"""A dynamic provider that does nothing: the engine's own floor for ``benchmarks/engine.py``.

``check`` returns the news, ``create`` a fresh id (outputs: the inputs plus the computed outputs a
``PhoneAgent`` has, so the state has the same shape and about the same size), ``diff`` reports no change,
``read`` returns the state, ``update`` the news and ``delete`` nothing.

It lives in a module, not in ``__main__``, so that dill pickles it by reference (a few dozen bytes, as
``PhoneAgentProvider``): a class of ``__main__`` would be pickled by value into every resource's state,
and the floor would carry kilobytes ours does not. The provider host imports it from the program's folder
(``benchmarks/engine.py`` puts that folder on ``PYTHONPATH``).

``BENCH_NOOP_IMPORT=<module>`` (``benchmarks/engine.py --attribute``) makes this module import ``<module>`` as
it loads, i.e. when ours imports ``oppie_pulumi``: at the program's start and at the provider host's first
call (when it unpickles the provider). The difference it makes is what the import costs.
"""

from __future__ import annotations

import importlib
import os
import pickle
import uuid
from typing import Any

import pulumi
from pulumi.dynamic import CheckResult, CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

INPUTS = (
    "name",
    "type",
    "language",
    "accent",
    "handoff_phone_number",
    "interruptible",
    "action_ids",
    "instructions",
    "data_collection_fields",
    "data_collection_webhook_url",
    "model",
    "first_message",
    "voice_id",
)
COMPUTED = ("org_id", "phone_number", "provider_external_id", "created_at", "updated_at")

if os.environ.get("BENCH_NOOP_IMPORT"):
    importlib.import_module(os.environ["BENCH_NOOP_IMPORT"])


class NoopProvider(ResourceProvider):
    """The least a dynamic provider can do."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(news, [])

    def create(self, props: dict[str, Any]) -> CreateResult:
        agent_id = str(uuid.uuid4())
        outs = {key: value for key, value in props.items() if not key.startswith("__")}
        # Values as long as the API's, so that the state weighs what ours does.
        outs.update(
            org_id="org_sandbox",
            phone_number="+15550000000",
            provider_external_id=f"PN{agent_id.replace('-', '')}",
            created_at="2026-01-01T00:00:00.000000+00:00",
            updated_at="2026-01-01T00:00:00.000000+00:00",
        )
        return CreateResult(agent_id, outs)

    def diff(self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]) -> DiffResult:
        return DiffResult(changes=False, replaces=[], delete_before_replace=False)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, props)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(news)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None


_PROVIDER = NoopProvider()


class NoopAgent(Resource, module="bench", name="NoopAgent"):
    """A ``PhoneAgent``-shaped resource on the no-op provider: the same arguments, the same outputs."""

    def __init__(self, resource_name: str, opts: pulumi.ResourceOptions | None = None, **args: Any) -> None:
        props: dict[str, Any] = {name: args.get(name) for name in INPUTS}
        props.update(dict.fromkeys(COMPUTED))
        # As PhoneAgent does: pulumi's serialize_provider leaves a wrapper on the pickler per call, which
        # slows every later registration (and fails near 970); the floor must not pay what ours does not.
        pickler: Any = pickle._Pickler
        saved = pickler._batch_setitems, pickler.save_dict
        try:
            super().__init__(_PROVIDER, resource_name, props, opts)
        finally:
            pickler._batch_setitems, pickler.save_dict = saved
