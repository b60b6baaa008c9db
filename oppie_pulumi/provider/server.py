"""The gRPC ``ResourceProvider`` service the engine talks to, and the plugin's ``main``.

Why the plain generated ``ResourceProviderServicer`` and not ``pulumi.provider.experimental`` (pulumi 3.272):
the experimental ``ProviderServicer`` does serve custom resources (Check, Diff with detailed diff, Create, Read,
Update, Delete, GetSchema), but every method goes through ``_raise_with_traceback``, which appends the Python
traceback to each error, so a 400 from the API would reach the CLI as a stack dump; its ``DiffConfig`` reads a
field that does not exist (``v.inputDiff``), it is asyncio-only (our client blocks), and it gives the provider
no way to log to the engine.
``pulumi.provider.main`` (the non-experimental one) serves only components (Construct/Call/Invoke). So this
module serves the generated servicer directly, on a thread pool like the dynamic provider host, converting
between protobuf ``Struct`` s and the plain dicts ``_models`` works with, and turning every error into one
message for the CLI.

The service is a thin adapter over the core (``agents.AgentService``): every rule about an agent (check, the
per-property diff, the previews, create with its reconciliation, read, update, delete) is the core's, the same the
dynamic ``PhoneAgent`` follows. What is the plugin's own: the wire format, the schema's names, refusing
``adopt_id`` (the plugin has Pulumi's import), rewriting a state the dynamic resource wrote, and progress lines
(``progress``).

The wire speaks the schema's names (``handoffPhoneNumber``); the core speaks ``_models``' names
(``handoff_phone_number``). A null property and a missing one mean the same to the API and to ``check``, so the
plugin leaves nulls out of all it returns: state and ``pulumi import``'s code stay free of them.
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2

from .._config import SOURCES, Settings
from .._enginewatch import engine_address, watch
from .._exceptions import ConfigError, OppieError
from .._models import INPUT_FIELDS
from ..agents import ADOPT_ID, NOT_YET_KNOWN, STABLE_ON_UPDATE, AgentService, CheckFailure, UnknownForm
from . import progress
from .engine import EngineLog, Operation
from .protocol import GRPC_OPTIONS, UNKNOWN, plugin_pb2, provider_pb2_grpc, unwrap_secret
from .protocol import provider_pb2 as proto
from .schema import PHONE_AGENT, VERSION, python_name, schema_json, wire_name

__all__ = ["OppieProvider", "main", "serve"]

_T = TypeVar("_T")
# The engine runs up to --parallel operations at once (default: unbounded); the client shares one pool and one
# rate limiter between them, so more threads only queue there.
MAX_WORKERS = 16
_CONFIG_KEYS = {source.key.split(":", 1)[1]: source.key for source in SOURCES.values()}
# What the dynamic provider stores in every resource: its presence marks a resource moving to the plugin (an alias
# from the dynamic type), whose state is rewritten by an update.
DYNAMIC_STATE_KEY = "__provider"
ADOPT_ID_REASON = (
    "is a property of the dynamic PhoneAgent only: to take over an existing agent, use the import resource option "
    "or `pulumi import oppie:index:PhoneAgent <name> <id>`"
)
_KINDS = {
    ("add", False): proto.PropertyDiff.ADD,
    ("add", True): proto.PropertyDiff.ADD_REPLACE,
    ("delete", False): proto.PropertyDiff.DELETE,
    ("delete", True): proto.PropertyDiff.DELETE_REPLACE,
    ("update", False): proto.PropertyDiff.UPDATE,
    ("update", True): proto.PropertyDiff.UPDATE_REPLACE,
}


# -- Struct <-> dicts ----------------------------------------------------------------------------------------------


def _plain(struct: struct_pb2.Struct | None) -> dict[str, Any]:
    """A Struct as a dict; secret wrappers (in config) are unwrapped: the plugin accepts no secrets."""
    if struct is None:
        return {}
    return {key: unwrap_secret(value) for key, value in json_format.MessageToDict(struct).items()}


def _python(struct: struct_pb2.Struct | None) -> dict[str, Any]:
    return {python_name(key): value for key, value in _plain(struct).items()}


def _struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    """Properties in ``_models`` names as a Struct in the schema's names, nulls left out, values a preview cannot
    know as the engine's unknown."""
    struct = struct_pb2.Struct()
    struct.update(
        {
            wire_name(key): UNKNOWN if value is NOT_YET_KNOWN else value
            for key, value in props.items()
            if value is not None
        }
    )
    return struct


# The wire's form of a value not known yet: the engine's sentinel string.
_UNKNOWN_FORM = UnknownForm(sentinel=UNKNOWN)


def _service(settings: Settings) -> AgentService:
    """The core for ``settings``, with a client that reports its waits to the engine (``progress``)."""

    def connect() -> Any:
        from .._client import client_for  # httpx, only once an operation calls the API

        return client_for(settings, on_wait=progress.report)

    return AgentService(connect, unknown_form=_UNKNOWN_FORM)


def _reason(prop: str, reason: str) -> str:
    """A check failure's reason, in the schema's words for a property the resource does not have."""
    if prop in INPUT_FIELDS or prop == ADOPT_ID:
        return reason
    known = ", ".join(wire_name(name) for name in INPUT_FIELDS)
    return f"is not a property of {PHONE_AGENT} (known: {known})"


def _top_level(path: str) -> str:
    """``instructions[0]`` and ``a.b`` -> their top-level property (ignoreChanges paths)."""
    for sep in ".[":
        path = path.split(sep, 1)[0]
    return python_name(path)


# -- the service ---------------------------------------------------------------------------------------------------


class OppieProvider(provider_pb2_grpc.ResourceProviderServicer):
    """The ``oppie`` resource provider: one ``oppie:index:PhoneAgent`` resource, configured by ``Configure``."""

    def __init__(self, log: EngineLog) -> None:
        self._log = log
        self._lock = threading.Lock()
        self._service: AgentService | None = None

    # -- plumbing --------------------------------------------------------------------------------------------------

    def _agents(self) -> AgentService:
        """The core with the configured settings (defaults and the environment before ``Configure``)."""
        with self._lock:
            if self._service is None:
                self._service = _service(Settings.resolve(lambda _key: None))
            return self._service

    def _serve(self, context: Any, request: Any, what: str, operation: Callable[[], _T], timeout: float = 0.0) -> _T:
        """Serve one engine call: check the type, make the operation current, and turn failures into messages.

        ``context.abort`` ends the call with the message as the error the CLI prints. An ``OppieError`` message
        already names the operation, the request, the status, the API's message and the fix; anything else is a
        bug in the plugin, and says so (the traceback goes to the engine's debug log, not to the user).
        """
        urn = request.urn
        type_ = request.type or (urn.split("::")[-2] if urn.count("::") >= 3 else "")
        if type_ and type_ != PHONE_AGENT:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"the oppie provider has no resource type {type_!r}")
        with Operation.serving(urn, self._log, timeout):
            try:
                return operation()
            except OppieError as exc:
                failure = str(exc)
            except Exception as exc:
                self._log.debug(f"oppie provider: {what} failed:\n{traceback.format_exc()}", urn)
                failure = (
                    f"the oppie provider failed unexpectedly during {what}: {type(exc).__name__}: {exc}. This is a "
                    "bug in the provider; please report it (the traceback is in the debug log: --logtostderr -v=9)"
                )
        _abort(context, grpc.StatusCode.UNKNOWN, failure)

    # -- package -------------------------------------------------------------------------------------------------

    def GetPluginInfo(self, request: Any, context: Any) -> Any:
        return plugin_pb2.PluginInfo(version=VERSION)

    def GetSchema(self, request: Any, context: Any) -> Any:
        return proto.GetSchemaResponse(schema=schema_json())

    # -- provider configuration ------------------------------------------------------------------------------------

    def CheckConfig(self, request: Any, context: Any) -> Any:
        """Refuse config values that cannot be used (``oppie:baseUrl`` not a URL, ...), each on its own key."""
        failures = []
        for name, value in _plain(request.news).items():
            key = _CONFIG_KEYS.get(name)
            if key is None or value is None or value == UNKNOWN:
                continue  # "version" and other engine keys; unknown values are checked when they are known
            try:
                Settings.resolve({key: value}.get, environ={})
            except ConfigError as exc:
                failures.append(proto.CheckFailure(property=name, reason=str(exc)))
        # The inputs go back as they came, secrets still marked secret.
        return proto.CheckResponse(inputs=request.news, failures=failures)

    def DiffConfig(self, request: Any, context: Any) -> Any:
        """A settings change updates the provider in place: agents never get replaced for it."""
        olds, news = _plain(request.olds), _plain(request.news)
        changed = sorted(key for key in set(olds) | set(news) if key in _CONFIG_KEYS and olds.get(key) != news.get(key))
        return proto.DiffResponse(
            changes=proto.DiffResponse.DIFF_SOME if changed else proto.DiffResponse.DIFF_NONE,
            diffs=changed,
            detailedDiff={key: proto.PropertyDiff(kind=proto.PropertyDiff.UPDATE) for key in changed},
            hasDetailedDiff=True,
        )

    def Configure(self, request: Any, context: Any) -> Any:
        """Settings from the provider's inputs (stack config ``oppie:*`` or an explicit provider), then the
        environment (``OPPIE_*``), then the defaults: the precedence of the dynamic resource."""
        config = {key.rsplit(":", 1)[-1]: value for key, value in request.variables.items()}
        config.update(_plain(request.args))
        known = {
            _CONFIG_KEYS[name]: value
            for name, value in config.items()
            if name in _CONFIG_KEYS and value is not None and value != UNKNOWN
        }
        try:
            settings = Settings.resolve(known.get)
        except ConfigError as exc:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        with self._lock:
            self._service = _service(settings)
        return proto.ConfigureResponse(
            acceptSecrets=False, supportsPreview=True, acceptResources=False, acceptOutputs=False
        )

    # -- PhoneAgent ------------------------------------------------------------------------------------------------

    def Check(self, request: Any, context: Any) -> Any:
        def check() -> Any:
            news = _python(request.news)
            adopt_id = news.pop(ADOPT_ID, None)
            result = self._agents().check(_python(request.olds), news)
            refused = [CheckFailure(ADOPT_ID, ADOPT_ID_REASON)] if adopt_id is not None else []
            failures = [
                proto.CheckFailure(property=wire_name(f.property), reason=_reason(f.property, f.reason))
                for f in [*result.failures, *refused]
            ]
            return proto.CheckResponse(inputs=_struct(result.inputs), failures=failures)

        return self._serve(context, request, "check", check)

    def Diff(self, request: Any, context: Any) -> Any:
        def diff() -> Any:
            ignore = frozenset(_top_level(path) for path in request.ignoreChanges)
            olds = _python(request.olds)
            changes = self._agents().diff(request.id, olds, _python(request.news), ignore).changes
            replaces = [wire_name(name) for name, change in changes.items() if change.replace]
            # State the dynamic PhoneAgent wrote (a resource aliased from its type): an update rewrites it in the
            # plugin's names; it sends the API only what differs, usually nothing.
            moving = DYNAMIC_STATE_KEY in olds
            return proto.DiffResponse(
                changes=proto.DiffResponse.DIFF_SOME if changes or moving else proto.DiffResponse.DIFF_NONE,
                replaces=replaces,
                # What an update keeps; a replacement keeps nothing.
                stables=[] if replaces else [wire_name(name) for name in STABLE_ON_UPDATE],
                deleteBeforeReplace=False,
                diffs=[wire_name(name) for name in changes],
                detailedDiff={
                    wire_name(name): proto.PropertyDiff(kind=_KINDS[change.kind, change.replace], inputDiff=False)
                    for name, change in changes.items()
                },
                hasDetailedDiff=True,
            )

        return self._serve(context, request, "diff", diff)

    def Create(self, request: Any, context: Any) -> Any:
        def create() -> Any:
            props = _python(request.properties)
            if request.preview:
                return proto.CreateResponse(id="", properties=_struct(AgentService.preview_create(props)))
            created = self._agents().create(props)
            return proto.CreateResponse(id=created.id, properties=_struct(created.outputs))

        return self._serve(context, request, "create", create, request.timeout)

    def Read(self, request: Any, context: Any) -> Any:
        """Refresh, ``get`` and import: the live agent; an agent that is gone answers with no id."""

        def read() -> Any:
            props = _python(request.properties) or _python(request.inputs)
            found = self._agents().read(request.id, props)
            if found is None:
                return proto.ReadResponse()
            return proto.ReadResponse(id=found.id, properties=_struct(found.outputs), inputs=_struct(found.inputs))

        return self._serve(context, request, "read", read, request.timeout)

    def Update(self, request: Any, context: Any) -> Any:
        def update() -> Any:
            olds, news = _python(request.olds), _python(request.news)
            if request.preview:
                return proto.UpdateResponse(properties=_struct(AgentService.preview_update(olds, news)))
            return proto.UpdateResponse(properties=_struct(self._agents().update(request.id, olds, news)))

        return self._serve(context, request, "update", update, request.timeout)

    def Delete(self, request: Any, context: Any) -> Any:
        def delete() -> Any:
            self._agents().delete(request.id, _python(request.properties))
            return empty_pb2.Empty()

        return self._serve(context, request, "delete", delete, request.timeout)

    def Cancel(self, request: Any, context: Any) -> Any:
        # Operations in flight finish or fail on their own (each has the client's timeouts and retry budget).
        return empty_pb2.Empty()

    # -- what this provider does not offer -------------------------------------------------------------------------

    def Handshake(self, request: Any, context: Any) -> Any:
        # Unimplemented tells the engine to use the Configure-based protocol this provider speaks.
        _unimplemented(context, "Handshake")

    def Parameterize(self, request: Any, context: Any) -> Any:
        _unimplemented(context, "Parameterize")

    def Invoke(self, request: Any, context: Any) -> Any:
        _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"the oppie provider has no function {request.tok!r}")

    def Call(self, request: Any, context: Any) -> Any:
        _unimplemented(context, "Call")

    def Construct(self, request: Any, context: Any) -> Any:
        _unimplemented(context, "Construct")

    def List(self, request: Any, context: Any) -> Any:
        _unimplemented(context, "List")

    def Attach(self, request: Any, context: Any) -> Any:
        _unimplemented(context, "Attach")

    def GetMapping(self, request: Any, context: Any) -> Any:
        # Asked by `pulumi convert` for the Terraform name of this provider: there is none.
        return proto.GetMappingResponse(provider="", data=b"")

    def GetMappings(self, request: Any, context: Any) -> Any:
        return proto.GetMappingsResponse(providers=[])


def _abort(context: Any, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("context.abort returned")  # it raises; this keeps the types honest


def _unimplemented(context: Any, method: str) -> NoReturn:
    _abort(context, grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented by the oppie provider")


# -- the process ---------------------------------------------------------------------------------------------------


def serve(args: Sequence[str], announce: Callable[[int], None]) -> grpc.Server:
    """Start the provider on a free local port; ``announce`` receives the port. Returns the running server."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=MAX_WORKERS), options=GRPC_OPTIONS)
    address = engine_address(args)
    if address is not None:
        watch(address)  # a killed `pulumi up` leaves the plugin running: it exits, so no create goes on alone
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(OppieProvider(EngineLog(address)), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    announce(port)
    return server


def main(args: Sequence[str] | None = None) -> None:
    """``pulumi-resource-oppie <engine-address>``: serve until the engine stops the plugin."""

    def announce(port: int) -> None:
        # The engine reads the port from the first line of stdout.
        sys.stdout.write(f"{port}\n")
        sys.stdout.flush()

    server = serve(sys.argv[1:] if args is None else args, announce)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop(0)
