"""``PhoneAgent``, the resource users declare, and ``PhoneAgentProvider``, the dynamic provider behind it.

``PhoneAgentProvider`` is a thin adapter: it turns what the dynamic provider host hands it into plain dicts and
answers with what ``agents.AgentService`` (the core both providers share) decides. Only what is the dynamic
host's own lives here: its result types, its forms of an unknown value, and pickling.

The provider object is pickled (dill) into every resource's state, by reference to this module's
``PhoneAgentProvider`` (so it stays importable here), and the provider host unpickles it and calls ``configure``
before any operation. So the instance carries nothing at pickle time: settings, token and HTTP connections are
resolved in ``configure`` and live in process-wide objects (``_client.client_for``) that are never pickled.
"""

from __future__ import annotations

import contextlib
import functools
import pickle
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypedDict, TypeVar

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

# A value not yet known during a preview reaches the provider in one of two forms: pulumi >= 3.2xx's host
# deserializes it into a ``pulumi.output.Unknown`` instance, older hosts hand over the UNKNOWN sentinel string.
from pulumi.output import Unknown
from pulumi.runtime.rpc import UNKNOWN

from ._config import Settings
from ._enginewatch import engine_address, watch
from ._exceptions import ConfigError, OppieError
from ._models import COMPUTED_OUTPUTS, OUTPUT_FIELDS
from .agents import ADOPT_ID, AgentService, UnknownForm, check_declared

if TYPE_CHECKING:
    # Imported where the API is called (``_client_for_settings``): a program, a preview and a no-change up never
    # call it, and httpx is a third of what importing oppie_pulumi costs each process (docs/performance.md).
    from ._client import PhoneApiClient

__all__ = ["PhoneAgent", "PhoneAgentArgs", "PhoneAgentProvider"]

# Set only by PhoneAgent.get: a read for a lookup, where a missing agent is an error, not a deletion. Never among
# the outputs, so a later refresh of the looked-up resource treats a deleted agent like any other.
LOOKUP = "_oppie_lookup"


# The dynamic host's two forms of a value not known yet.
_UNKNOWN_FORM = UnknownForm(sentinel=UNKNOWN, types=(Unknown,))

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _briefly(operation: Callable[_P, _R]) -> Callable[_P, _R]:
    """Our own errors leave the adapter with the adapter's frame only.

    The dynamic host prints the whole traceback of any error (``_abort_with_traceback`` in
    pulumi/dynamic/__main__.py), and from deep in the client that was 40 lines above the one that matters. An
    ``OppieError`` is a whole sentence (operation, request, status, the API's message, the fix), so its frames
    tell a user nothing: the host now prints three frames, then the message. Any other exception is a bug, and
    keeps its full traceback for the report.
    """

    @functools.wraps(operation)
    def reported(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return operation(*args, **kwargs)
        except OppieError as error:
            raise error.with_traceback(None) from None

    return reported


class PhoneAgentProvider(ResourceProvider):
    """The dynamic provider behind ``PhoneAgent``. Takes no arguments: settings come from stack config.

    See ``oppie_pulumi._config`` for the keys (``oppie:apiToken``, ``oppie:baseUrl``, ...).
    """

    # Nothing secret is ever captured in the instance, so its pickle needs no encryption in state.
    serialize_as_secret_always = False

    _settings: Settings | None
    _service: AgentService | None

    def __init__(self) -> None:
        super().__init__()
        self._settings = None
        self._service = None

    # Only plain settings may reach the state: the configured settings (and token) never do.
    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self._settings = None
        self._service = None

    def configure(self, req: ConfigureRequest) -> None:
        """Resolve settings from the stack config, then the environment (see ``_config``)."""
        self._settings = Settings.resolve(req.config.get)
        self._service = None
        _watch_the_engine()

    def _agents(self) -> AgentService:
        service = self._service
        if service is None:
            service = self._service = AgentService(self._client, unknown_form=_UNKNOWN_FORM)
        return service

    # Outside a provider host (benchmarks, tests calling the provider in-process, and the CLI) the
    # environment alone configures the provider.
    def _client(self) -> PhoneApiClient:
        if self._settings is None:
            self._settings = Settings.resolve(lambda _key: None)
        from ._client import client_for

        return client_for(self._settings)

    @_briefly
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """Validate the declared agent, fill in the API's defaults; unknown values pass untouched."""
        checked = self._agents().check(olds, news)
        return CheckResult(checked.inputs, [CheckFailure(f.property, f.reason) for f in checked.failures])

    @_briefly
    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Old outputs against new inputs: ``model`` replaces, anything else updates in place."""
        result = self._agents().diff(_id, olds, news)
        return DiffResult(changes=result.changed, replaces=result.replaces, delete_before_replace=False)

    @_briefly
    def create(self, props: dict[str, Any]) -> CreateResult:
        """POST /phone once; or, with ``adopt_id``, take over that agent and bring it to the spec."""
        created = self._agents().create(props)
        return CreateResult(created.id, created.outputs)

    @_briefly
    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """The live agent from GET /phone; an agent deleted elsewhere drops out of state."""
        # PhoneAgent.get: an empty answer would be taken by the engine as found, with every output None.
        found = self._agents().read(id_, props, lookup=bool(props.get(LOOKUP)))
        if found is None:
            return ReadResult(None, {})
        return ReadResult(found.id, found.outputs, found.inputs)

    @_briefly
    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """PATCH /phone/{id} with only the changed fields; returns the full outputs."""
        return UpdateResult(self._agents().update(id_, olds, news))

    @_briefly
    def delete(self, id_: str, props: dict[str, Any]) -> None:
        """DELETE /phone/{id}; an agent already gone is success."""
        self._agents().delete(id_, props)


_PROVIDER = PhoneAgentProvider()


@contextlib.contextmanager
def _pickler_restored() -> Iterator[None]:
    """Undo what pulumi's ``serialize_provider`` leaves behind on ``pickle._Pickler``.

    pulumi 3.x (seen in 3.272) wraps ``pickle._Pickler._batch_setitems`` anew each time it pickles a
    dynamic provider and never unwraps it, so the n-th ``PhoneAgent`` of a program is pickled n wrappers
    deep and a program of about 970 agents fails with ``RecursionError``.
    """
    pickler: Any = pickle._Pickler
    saved = pickler._batch_setitems, pickler.save_dict
    try:
        yield
    finally:
        pickler._batch_setitems, pickler.save_dict = saved


_PLAINTEXT_TOKEN_WARNED = threading.Event()
PLAINTEXT_TOKEN_WARNING = (
    "oppie:apiToken is set in plain text: the engine keeps the whole stack config in the state (as the inputs of "
    "the default pulumi-python provider), so the token is stored there unencrypted. Set it as a secret: "
    "`pulumi config set --secret oppie:apiToken <token>`, or leave it out of the config and set OPPIE_API_TOKEN."
)


def _warn_if_token_in_plain_text() -> None:
    """Warn once per program run; the program, not the provider host, is where a warning reaches the CLI."""
    if _PLAINTEXT_TOKEN_WARNED.is_set():
        return
    _PLAINTEXT_TOKEN_WARNED.set()
    key = "oppie:apiToken"
    if pulumi.runtime.get_config(key) and not pulumi.runtime.is_config_secret(key):
        pulumi.log.warn(PLAINTEXT_TOKEN_WARNING)


# What a program does not know yet as it declares an agent: another resource's output, or anything awaited.
_NOT_KNOWN_IN_PROGRAM = UnknownForm(types=(pulumi.Output, Awaitable))


def _judged_in_program(resource_name: str, props: Mapping[str, Any] | None = None) -> None:
    """Fail the program, as it declares the resource, for what the provider would refuse in any case.

    A ``pulumi.RunError``: the Python language host prints its message alone. Raised otherwise, in the provider
    host, the same mistake reaches the CLI after "Resource monitor has terminated", and a bad setting as a
    traceback. The settings are resolved as the provider host resolves them (stack config, then environment);
    ``props`` are judged by the core's own rules, those not known yet and those that depend on the resource's state
    left to the provider's check (which every other program, in any language, still goes through).
    """
    problem: str | None = None
    try:
        Settings.resolve(pulumi.runtime.get_config)
    except ConfigError as exc:
        problem = str(exc)  # never quotes the token
    if problem is not None:  # raised here, not in the handler, so that no error rides along as the context
        raise pulumi.RunError(problem)
    failures = [] if props is None else check_declared(props, _NOT_KNOWN_IN_PROGRAM)
    if len(failures) == 1:
        raise pulumi.RunError(f"PhoneAgent {resource_name!r}: {failures[0].property}: {failures[0].reason}")
    if failures:
        listed = "".join(f"\n  {f.property}: {f.reason}" for f in failures)
        raise pulumi.RunError(f"PhoneAgent {resource_name!r} has {len(failures)} invalid arguments:{listed}")


def _watch_the_engine() -> None:
    """In Pulumi's dynamic provider host (``python -m pulumi.dynamic <engine-address>``), exit once the engine is
    gone (``_enginewatch``): a killed ``pulumi up`` leaves the host running, and its creates must not go on alone.
    Nowhere else: tests and benchmarks call the provider in their own process."""
    main = sys.modules.get("__main__")
    if getattr(getattr(main, "__spec__", None), "name", None) != "pulumi.dynamic.__main__":
        return
    address = engine_address(sys.argv[1:])
    if address is not None:
        watch(address)


class PhoneAgentArgs(TypedDict, total=False):
    """The arguments of ``PhoneAgent`` (``name`` required), e.g. for agents loaded from a file."""

    name: pulumi.Input[str]
    type: pulumi.Input[str] | None
    language: pulumi.Input[str] | None
    accent: pulumi.Input[str] | None
    handoff_phone_number: pulumi.Input[str] | None
    interruptible: pulumi.Input[bool] | None
    action_ids: pulumi.Input[list[str]] | None
    instructions: pulumi.Input[list[str]] | None
    data_collection_fields: pulumi.Input[list[str]] | None
    data_collection_webhook_url: pulumi.Input[str] | None
    model: pulumi.Input[str] | None
    first_message: pulumi.Input[str] | None
    voice_id: pulumi.Input[str] | None
    adopt_id: pulumi.Input[str] | None


class PhoneAgent(Resource, module="oppie", name="PhoneAgent"):
    """An AI phone agent (and the phone number the API provisions for it).

    Every argument takes a ``pulumi.Input``. Changing ``model`` replaces the agent (new id and phone
    number); every other change is made in place. ``adopt_id`` takes over an existing agent instead of
    creating one (Pulumi's ``import`` does not work for dynamic providers).
    """

    name: pulumi.Output[str]
    type: pulumi.Output[str]
    language: pulumi.Output[Any]
    accent: pulumi.Output[str | None]
    handoff_phone_number: pulumi.Output[str | None]
    interruptible: pulumi.Output[bool]
    action_ids: pulumi.Output[list[str] | None]
    instructions: pulumi.Output[list[str] | None]
    data_collection_fields: pulumi.Output[list[str] | None]
    data_collection_webhook_url: pulumi.Output[str | None]
    model: pulumi.Output[str]
    first_message: pulumi.Output[str | None]
    voice_id: pulumi.Output[str | None]
    org_id: pulumi.Output[str]
    phone_number: pulumi.Output[str | None]
    provider_external_id: pulumi.Output[str | None]
    created_at: pulumi.Output[str]
    updated_at: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        name: pulumi.Input[str],
        type: pulumi.Input[str] | None = None,
        language: pulumi.Input[str] | None = None,
        accent: pulumi.Input[str] | None = None,
        handoff_phone_number: pulumi.Input[str] | None = None,
        interruptible: pulumi.Input[bool] | None = None,
        action_ids: pulumi.Input[list[str]] | None = None,
        instructions: pulumi.Input[list[str]] | None = None,
        data_collection_fields: pulumi.Input[list[str]] | None = None,
        data_collection_webhook_url: pulumi.Input[str] | None = None,
        model: pulumi.Input[str] | None = None,
        first_message: pulumi.Input[str] | None = None,
        voice_id: pulumi.Input[str] | None = None,
        adopt_id: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "name": name,
            "type": type,
            "language": language,
            "accent": accent,
            "handoff_phone_number": handoff_phone_number,
            "interruptible": interruptible,
            "action_ids": action_ids,
            "instructions": instructions,
            "data_collection_fields": data_collection_fields,
            "data_collection_webhook_url": data_collection_webhook_url,
            "model": model,
            "first_message": first_message,
            "voice_id": voice_id,
        }
        if adopt_id is not None:
            props[ADOPT_ID] = adopt_id
        _judged_in_program(resource_name, props)
        # Outputs present as None so that Pulumi exposes them as attributes.
        props.update(dict.fromkeys(COMPUTED_OUTPUTS))
        _warn_if_token_in_plain_text()
        with _pickler_restored():
            super().__init__(_PROVIDER, resource_name, props, opts)

    @staticmethod
    def get(resource_name: str, id: pulumi.Input[str], opts: pulumi.ResourceOptions | None = None) -> PhoneAgent:
        """Look up an existing agent by id; Pulumi reads it and does not manage it."""
        _judged_in_program(resource_name)
        agent = PhoneAgent.__new__(PhoneAgent)
        props: dict[str, Any] = {**dict.fromkeys(OUTPUT_FIELDS), LOOKUP: True}
        with _pickler_restored():
            Resource.__init__(
                agent,
                _PROVIDER,
                resource_name,
                props,
                pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(id=id)),
            )
        return agent
