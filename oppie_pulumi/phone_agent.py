"""``PhoneAgentProvider`` (the dynamic provider) and ``PhoneAgent`` (the resource users declare).

The provider object is pickled (dill) into every resource's state, and the provider host unpickles it
and calls ``configure`` before any operation. So the instance carries nothing at pickle time: settings,
token and HTTP connections are resolved in ``configure`` and live in process-wide objects
(``_client.client_for``) that are never pickled.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar, TypedDict

try:
    import fcntl
except ImportError:  # Windows: identical creates are then serialised within one process only
    fcntl = None  # type: ignore[assignment]

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

if TYPE_CHECKING:
    # Imported where the API is called (_client below): a program, a preview and a no-change up never call it,
    # and httpx is a third of what importing oppie_pulumi costs each process a command starts
    # (docs/performance.md).
    from ._client import PhoneApiClient
from ._config import Settings
from ._exceptions import (
    AmbiguousCreate,
    ConfigError,
    MalformedResponse,
    NotFound,
    OppieError,
    ServerError,
    TransportError,
    WrongBaseUrl,
)
from ._models import (
    API_NAMES,
    COMPUTED_OUTPUTS,
    INPUT_FIELDS,
    OUTPUT_FIELDS,
    REPLACE_ON_CHANGE,
    api_body,
    api_value,
    defaults,
    normalized,
    outputs_from_agent,
    validation_failures,
)

__all__ = ["PhoneAgent", "PhoneAgentArgs", "PhoneAgentProvider"]

ADOPT_ID = "adopt_id"
# Set only by PhoneAgent.get: a read for a lookup, where a missing agent is an error, not a deletion. Never among
# the outputs, so a later refresh of the looked-up resource treats a deleted agent like any other.
LOOKUP = "_oppie_lookup"
# Outputs users export and wire elsewhere that the API may change on its own (it can reassign a number).
IDENTITY_OUTPUTS = ("phone_number", "provider_external_id")
# Set by read when one of IDENTITY_OUTPUTS changed since the last deployment: {output: value it had}. The engine
# decides a refresh's 'update' or 'same' by our Diff of the refreshed outputs against the *inputs*, which hold
# no such output, so without this mark a new number would refresh as 'same'. The next update drops it.
REASSIGNED = "_oppie_reassigned"
# A refresh reads every agent and the API can only list them all: reads within this many seconds
# share one list (the client's own writes invalidate it, so a read after a write sees the write).
READ_SNAPSHOT_SECONDS = 2.0
# Failures after which the API may or may not have acted: a 5xx, a timeout, a dropped connection, or
# a 2xx whose body we could not read. After one of these the provider looks before it leaps.
AMBIGUOUS = (TransportError, ServerError, MalformedResponse)
# How far the API's clock may lag ours when we look for the agent an unanswered create made.
CLOCK_SKEW = timedelta(seconds=5)
# After a create that needed a retry, how long to let an earlier POST the API may still apply land before the
# last look: the request timeout, within these bounds (the floor is for very short timeouts, where the time a
# busy API takes to apply a request it holds is not much shorter than the time it takes to answer at all).
SETTLE_SECONDS = (2.0, 10.0)
# Identical creates on one machine wait at most this long for each other before failing, saying so.
CREATE_LOCK_WAIT_SECONDS = 600.0
# How long the ids that creates of this machine ended up holding are kept for the looks of later creates.
HELD_IDS_SECONDS = 3600.0
UPDATE_OF_DELETED_FIX = (
    ". Fix: the agent was deleted outside Pulumi; run `pulumi refresh` (or `pulumi up --refresh`) to drop it "
    "from the state, and the next `pulumi up` creates it again"
)


# Deeper than any input PhoneAgent takes (lists of strings): a value nested further is invalid anyway, and
# validation reports it; looking further would only let a hostile input exhaust the stack.
_UNKNOWN_DEPTH = 32


def _is_unknown(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is, or contains, a value the engine does not know yet (both forms, nested lists/dicts)."""
    if isinstance(value, Unknown):
        return True
    if isinstance(value, str):
        return value == UNKNOWN
    if depth >= _UNKNOWN_DEPTH:
        return False
    if isinstance(value, list):
        return any(_is_unknown(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return any(_is_unknown(item, depth + 1) for item in value.values())
    return False


def _label(props: Mapping[str, Any], agent_id: str | None = None) -> str:
    name = props.get("name")
    if agent_id and isinstance(name, str):
        return f"{name!r} ({agent_id})"
    return repr(name) if isinstance(name, str) else str(agent_id)


def _spec(props: Mapping[str, Any]) -> dict[str, Any]:
    return {name: props.get(name) for name in INPUT_FIELDS}


def _changed(olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
    return [
        name
        for name in INPUT_FIELDS
        if _is_unknown(news.get(name)) or normalized(name, olds.get(name)) != normalized(name, news.get(name))
    ]


def _missing(operation: str, detail: str) -> NotFound:
    """The agent is not in ``GET /phone``: a 404 in all but the status line the API never sent."""
    return NotFound(
        f"{operation} failed: {detail}",
        operation=operation,
        method="GET",
        path="/phone",
        status_code=404,
        api_message="not in GET /phone",
    )


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


# -- identical creates, one at a time ---------------------------------------------------------------------------
#
# After an unanswered POST the provider lists the agents and takes the one its POST made: same spec, made since
# it began, held by nobody it knows of. Two creates of one spec running at once could then take each other's
# agent (two resources holding one agent: destroying one deletes the other's). So they do not run at once: per
# spec, within this process (a lock) and across the processes of this machine (a file lock, shared with the ids
# such creates ended up holding, so that a later look never takes an agent another stack already holds). Across
# machines nothing is shared: an agent that appeared just before a create began is then never taken, only named.


def _spec_key(base_url: str, spec: Mapping[str, Any]) -> str:
    body = json.dumps([base_url, api_body(spec)], sort_keys=True, ensure_ascii=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


_SPEC_LOCKS: dict[str, tuple[threading.Lock, list[int]]] = {}
_SPEC_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def _spec_lock(key: str) -> Iterator[None]:
    """This process's lock for one spec, kept only while some create uses it."""
    with _SPEC_LOCKS_GUARD:
        lock, users = _SPEC_LOCKS.setdefault(key, (threading.Lock(), [0]))
        users[0] += 1
    try:
        with lock:
            yield
    finally:
        with _SPEC_LOCKS_GUARD:
            users[0] -= 1
            if not users[0]:
                del _SPEC_LOCKS[key]


class _HeldElsewhere:
    """The ids that creates of this machine ended up holding, in the lock file of their spec's bucket."""

    def __init__(self, handle: IO[str], guard: threading.Condition) -> None:
        self._handle = handle
        self._guard = guard  # the threads of this process share the file

    def ids(self) -> set[str]:
        with self._guard:
            return self._read()

    def _read(self) -> set[str]:
        self._handle.seek(0)
        recent = time.time() - HELD_IDS_SECONDS
        held = set()
        for line in self._handle.read().splitlines():
            stamp, _, agent_id = line.partition(" ")
            try:
                if float(stamp) >= recent and agent_id:
                    held.add(agent_id)
            except ValueError:
                continue  # a line cut short by a crash: nothing to learn from it
        return held

    def record(self, agent_id: str) -> None:
        if not agent_id.isprintable() or " " in agent_id:
            return  # not an id that can be written one per line; the in-process record still holds it
        with self._guard:
            if self._handle.seek(0, os.SEEK_END) > 64 * 1024:
                keep = [f"{time.time():.0f} {held}" for held in self._read()]
                self._handle.seek(0)
                self._handle.truncate()
                self._handle.write("".join(line + "\n" for line in keep))
            self._handle.write(f"{time.time():.0f} {agent_id}\n")
            self._handle.flush()


def _coordination_dir() -> Path | None:
    """A folder only this user can write, shared by this user's processes; None where there is none."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    folder = Path(tempfile.gettempdir()) / f"oppie-pulumi-{uid if uid is not None else 'user'}" / "creates"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.parent.stat()
    except OSError:
        return None
    # A folder someone else made (or can write) could feed us ids to ignore: then do without it.
    if uid is not None and (info.st_uid != uid or info.st_mode & 0o022):
        return None
    return folder


class _Bucket:
    """One of 256 lock files: held by this process while any of its threads creates an agent of a spec in it.

    Threads of one process share the hold (identical specs among them are already serialised by _spec_lock), so
    unrelated specs that share a bucket never wait for each other within a process; across processes they may.
    """

    def __init__(self) -> None:
        self.state = threading.Condition()
        self.users = 0
        self.acquiring = False
        self.handle: IO[str] | None = None


_BUCKETS: dict[str, _Bucket] = {}
_BUCKETS_GUARD = threading.Lock()


def _lock_file(path: Path, label: str) -> IO[str] | None:
    """``path`` open and flock-ed (waiting for other processes), or None if it cannot be opened."""
    try:
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (closed by _machine_lock)
    except OSError:
        return None
    deadline = time.monotonic() + CREATE_LOCK_WAIT_SECONDS
    pause = 0.005
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.close()
                raise OppieError(
                    f"create phone agent {label} failed: another process on this machine has been creating an "
                    f"identical agent for {CREATE_LOCK_WAIT_SECONDS:.0f} s (it holds {path}). If no `pulumi` "
                    "command is running, delete that file and run `pulumi up` again."
                ) from None
            time.sleep(pause)
            pause = min(pause * 2, 0.1)


@contextlib.contextmanager
def _machine_lock(key: str, label: str) -> Iterator[_HeldElsewhere | None]:
    """This machine's lock of the bucket of one spec, with the ids its creates ended up holding."""
    folder = _coordination_dir() if fcntl is not None else None
    if folder is None:
        yield None
        return
    with _BUCKETS_GUARD:
        bucket = _BUCKETS.setdefault(key[:2], _Bucket())
    with bucket.state:
        bucket.users += 1
        while bucket.acquiring:
            bucket.state.wait()
        first = bucket.handle is None
        bucket.acquiring = first
    try:
        if first:
            handle = _lock_file(folder / f"{key[:2]}.lock", label)
            with bucket.state:
                bucket.handle, bucket.acquiring = handle, False
                bucket.state.notify_all()
        yield None if bucket.handle is None else _HeldElsewhere(bucket.handle, bucket.state)
    finally:
        with bucket.state:
            if first:
                bucket.acquiring = False  # also when taking the lock failed: the next thread tries
            bucket.users -= 1
            if not bucket.users and bucket.handle is not None:
                fcntl.flock(bucket.handle, fcntl.LOCK_UN)
                bucket.handle.close()
                bucket.handle = None
            bucket.state.notify_all()


@contextlib.contextmanager
def _identical_creates_one_at_a_time(base_url: str, spec: Mapping[str, Any]) -> Iterator[_HeldElsewhere | None]:
    key = _spec_key(base_url, spec)
    with _spec_lock(key), _machine_lock(key, _label(spec)) as held_elsewhere:
        yield held_elsewhere


def _may_land_later(failure: OppieError) -> bool:
    """Whether the request may still be on its way to being applied: no answer at all (a timeout, a dropped
    connection), or a gateway's 502/504 while the API behind it may still be working on it. An answer from the
    API itself (a 5xx it sent, a 2xx whose body was cut) means it is done with the request."""
    if isinstance(failure, TransportError):
        return failure.may_have_reached_api
    return isinstance(failure, ServerError) and failure.status_code in (502, 504)


def _created_at(agent: Mapping[str, Any]) -> tuple[datetime, timedelta] | None:
    """When the API says it made ``agent``, and the resolution of that stamp (it is cut, not rounded)."""
    value = agent.get("created_at")
    created = _parse_time(value)
    if created is None or not isinstance(value, str):
        return None
    digits = len(value.partition(".")[2].rstrip("Zz").split("+")[0].split("-")[0]) if "." in value else 0
    return created, timedelta(seconds=10.0 ** -min(digits, 6))


def _matching(
    agents: list[dict[str, Any]], spec: Mapping[str, Any], started: datetime, held: set[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Agents of ``spec`` that nobody known holds: those made since ``started`` (``ours``, as far as this machine
    can tell), and those made in the few seconds before it (``earlier``: most likely someone else's)."""
    ours, earlier = [], []
    for agent in agents:
        stamp = _created_at(agent)
        if agent["id"] in held or stamp is None or _changed(outputs_from_agent(agent), spec):
            continue
        created, resolution = stamp
        if created + resolution > started:
            ours.append(agent)
        elif created >= started - CLOCK_SKEW:
            earlier.append(agent)
    return ours, earlier


class _Run:
    """What this provider host has seen of the stack during one CLI run (one host serves one command).

    The engine re-runs Check *without the old inputs* when it replaces a resource, when ``--replace`` targets it
    and when it creates one whose agent vanished, so ``adopt_id`` comes back into the inputs of that create. The
    provider cannot tell such a create from a first adoption by its inputs; what it can tell is whether the
    engine has shown it, earlier in the same run, that the stack already holds (or held) that agent: in a Diff,
    an Update, a Read, a Delete, or the old inputs of a Check. A create naming such an agent is a replacement
    and makes a new agent; and an agent a create adopted in this run is never deleted by a later delete of the
    same run (a targeted ``--replace`` gives no sign before its create, so the create adopts the agent again
    and the old resource's delete must leave it to the new one).
    """

    lock: ClassVar[threading.Lock] = threading.Lock()
    held: ClassVar[set[str]] = set()
    vanished: ClassVar[set[str]] = set()
    adopted: ClassVar[set[str]] = set()

    @classmethod
    def saw_held(cls, agent_id: Any) -> None:
        if isinstance(agent_id, str) and agent_id:
            with cls.lock:
                cls.held.add(agent_id)

    @classmethod
    def saw_vanished(cls, agent_id: str) -> None:
        with cls.lock:
            cls.vanished.add(agent_id)

    @classmethod
    def saw_adopted(cls, agent_id: str) -> None:
        with cls.lock:
            cls.adopted.add(agent_id)

    @classmethod
    def is_replacement(cls, adopt_id: str) -> bool:
        with cls.lock:
            return adopt_id in cls.held or adopt_id in cls.vanished

    @classmethod
    def adopted_here(cls, agent_id: str) -> bool:
        with cls.lock:
            return agent_id in cls.adopted


class PhoneAgentProvider(ResourceProvider):
    """The dynamic provider behind ``PhoneAgent``. Takes no arguments: settings come from stack config.

    See ``oppie_pulumi._config`` for the keys (``oppie:apiToken``, ``oppie:baseUrl``, ...).
    """

    # Nothing secret is ever captured in the instance, so its pickle needs no encryption in state.
    serialize_as_secret_always = False

    _settings: Settings | None

    def __init__(self) -> None:
        super().__init__()
        self._settings = None

    # Only plain settings may reach the state: the configured settings (and token) never do.
    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self._settings = None

    def configure(self, req: ConfigureRequest) -> None:
        """Resolve settings from the stack config, then the environment (see ``_config``)."""
        self._settings = Settings.resolve(req.config.get)

    # Outside a provider host (benchmarks, tests calling the provider in-process, and the CLI) the
    # environment alone configures the provider.
    def _client(self) -> PhoneApiClient:
        if self._settings is None:
            self._settings = Settings.resolve(lambda _key: None)
        from ._client import client_for

        return client_for(self._settings)

    _claimed: ClassVar[set[str]] = set()
    _claimed_lock: ClassVar[threading.Lock] = threading.Lock()

    def _claim(self, agent_id: str) -> None:
        with self._claimed_lock:
            self._claimed.add(agent_id)

    # -- preview: no API calls -----------------------------------------------------------------------

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """Validate the declared agent, fill in the API's defaults; unknown values pass untouched."""
        # Engine keys (``__provider``) and the computed outputs PhoneAgent declares as None are not inputs.
        # A key that is not a string is kept, so that validation reports it instead of check raising.
        inputs = {
            key: value
            for key, value in news.items()
            if not (isinstance(key, str) and key.startswith("__")) and not (key in COMPUTED_OUTPUTS and value is None)
        }
        for key, default in defaults().items():
            if inputs.get(key) is None:
                inputs[key] = default
        adopt_id = inputs.pop(ADOPT_ID, None)
        if olds:
            _Run.saw_held(olds.get(ADOPT_ID))
            # The resource exists: adopt_id was a create-time instruction. Dropping it here means a
            # replacement (a model change) creates a new agent instead of re-adopting the old one.
            adopt_id = None
        unknown = frozenset(key for key, value in inputs.items() if _is_unknown(value))
        # Only an agent that will be POSTed must use a model POST /phone accepts; an adopted or existing one may
        # carry a newer model (oppie-vox-livekit) that the API reports but refuses on create.
        new_agent = not olds and adopt_id is None
        failures = [
            CheckFailure(prop, reason) for prop, reason in validation_failures(inputs, unknown, new_agent=new_agent)
        ]
        if adopt_id is not None:
            if not (_is_unknown(adopt_id) or (isinstance(adopt_id, str) and adopt_id.strip())):
                failures.append(CheckFailure(ADOPT_ID, "must be the id of an existing agent (a non-empty string)"))
            inputs[ADOPT_ID] = adopt_id
        return CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Old outputs against new inputs: ``model`` replaces, anything else updates in place.

        ``adopt_id`` only matters at create time, so changing it is no change.
        """
        _Run.saw_held(_id)
        changed = _changed(olds, news)
        reassigned = olds.get(REASSIGNED)
        if isinstance(reassigned, dict):
            changed += [name for name in IDENTITY_OUTPUTS if name in reassigned]
        # A state written before a field existed lacks it: that says nothing about a change, and for a field
        # that cannot change on a live agent (model) a replacement on that ground would destroy a working agent.
        replaces = [name for name in changed if name in REPLACE_ON_CHANGE and name in olds]
        changed = [name for name in changed if name not in REPLACE_ON_CHANGE or name in olds]
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=False)

    # -- apply ---------------------------------------------------------------------------------------

    def create(self, props: dict[str, Any]) -> CreateResult:
        """POST /phone once; or, with ``adopt_id``, take over that agent and bring it to the spec."""
        spec = _spec(props)
        client = self._client()
        adopt_id = props.get(ADOPT_ID)
        if adopt_id and not _Run.is_replacement(adopt_id):
            outputs = self._adopt(client, adopt_id, spec)
            agent_id = adopt_id
            _Run.saw_adopted(agent_id)
        else:
            agent = self._post(client, spec)
            agent_id, outputs = agent["id"], outputs_from_agent(agent)
        self._claim(agent_id)
        return CreateResult(agent_id, self._with_adopt_id(outputs, props))

    def _post(self, client: PhoneApiClient, spec: dict[str, Any]) -> dict[str, Any]:
        label = _label(spec)
        settings = client.settings
        with _identical_creates_one_at_a_time(settings.base_url, spec) as held_elsewhere:
            # Every look covers the time since the FIRST attempt (taken once no identical create runs): an
            # earlier POST the API applied late is found too.
            started = datetime.now(timezone.utc)
            attempt = 0
            unanswered_at = 0.0  # when the last POST that found nothing, and may yet land, failed
            while True:
                try:
                    agent = client.create(api_body(spec), label=label)
                    break
                except AMBIGUOUS as exc:
                    failure: OppieError = exc
                if isinstance(failure, TransportError) and not failure.may_have_reached_api:
                    raise failure  # never sent: the client already retried what it could
                # The API may have created the agent without telling us: look before retrying, so a
                # create never leaves an agent the state does not know, nor makes two.
                try:
                    ours, earlier = self._find_created(client, spec, started, held_elsewhere)
                except WrongBaseUrl:
                    raise  # not the API: nothing was created there
                except OppieError as look:
                    raise AmbiguousCreate(
                        f"create phone agent {label}: the API did not answer ({failure}), and listing the agents "
                        f"to see whether it created one failed too ({look}). An agent named {label} may exist "
                        "or appear shortly: look for it in the dashboard and either delete it or adopt it by "
                        "setting adopt_id to its id, then run `pulumi up` again.",
                        candidate_ids=[],
                    ) from failure
                if len(ours) == 1:
                    agent = ours[0]
                    break
                if ours:
                    ids = ", ".join(agent["id"] for agent in ours)
                    raise AmbiguousCreate(
                        f"create phone agent {label}: the API did not answer ({failure}), and {len(ours)} "
                        f"agents matching this spec appeared since the request began: {ids}. Delete all "
                        "but one in the dashboard, then run `pulumi up` again with adopt_id set to the one "
                        "kept.",
                        candidate_ids=[agent["id"] for agent in ours],
                    ) from failure
                if earlier:
                    # Made before this create began: another deployment's, creating the same agent at the same
                    # time elsewhere (or ours, if the API's clock runs behind). Never taken without a person.
                    ago = (
                        started - min(_parse_time(agent["created_at"]) or started for agent in earlier)
                    ).total_seconds()
                    ids = ", ".join(agent["id"] for agent in earlier)
                    raise AmbiguousCreate(
                        f"create phone agent {label}: the API did not answer ({failure}), and the only agent(s) "
                        f"matching this spec ({ids}) appeared {ago:.1f} s before this create began: most likely "
                        "another deployment's, creating the same agent at the same time, so none was taken. If "
                        f"nothing else creates an agent named {label}, it is this create's own (the API's clock "
                        f"runs behind): adopt it with adopt_id={earlier[0]['id']!r}; otherwise run `pulumi up` "
                        "again.",
                        candidate_ids=[agent["id"] for agent in earlier],
                    ) from failure
                # None: the API did not act, so one more POST cannot make a second agent.
                if attempt >= settings.max_retries:
                    raise failure
                if _may_land_later(failure):
                    unanswered_at = time.monotonic()
                client.pause(attempt)
                attempt += 1
            if unanswered_at:
                # A POST that failed unanswered may still land after the one that worked: once it had the time
                # a request may take, look again and remove such a second agent (ours: made since we began).
                low, high = SETTLE_SECONDS
                client.wait(unanswered_at + min(max(settings.timeout_seconds, low), high) - time.monotonic())
                try:
                    extras, _ = self._find_created(client, spec, started, held_elsewhere, keep=agent["id"])
                except OppieError:
                    extras = []  # the look is a precaution: the agent we hold is sound either way
                for extra in extras:
                    try:
                        client.delete(extra["id"], label=_label(spec, extra["id"]) + " (made twice by a late POST)")
                    except NotFound:
                        pass  # already gone
                    except OppieError as exc:
                        raise AmbiguousCreate(
                            f"create phone agent {label}: after a retry the API made it twice ({agent['id']} and, "
                            f"late, {extra['id']}), and removing the second failed ({exc}). Delete one of them in "
                            f"the dashboard, then run `pulumi up` again with adopt_id set to the other.",
                            candidate_ids=[agent["id"], extra["id"]],
                        ) from None
            self._claim(agent["id"])
            if held_elsewhere is not None:
                held_elsewhere.record(agent["id"])
            return agent

    def _find_created(
        self,
        client: PhoneApiClient,
        spec: Mapping[str, Any],
        started: datetime,
        held_elsewhere: _HeldElsewhere | None = None,
        keep: str | None = None,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """``(ours, earlier)``: agents of ``spec`` nobody known holds, made since ``started`` / just before it."""
        with self._claimed_lock:
            held = set(self._claimed)
        if held_elsewhere is not None:
            held |= held_elsewhere.ids()
        if keep is not None:
            held.add(keep)
        agents = client.list(operation=f"look for the agent a create of {_label(spec)} may have made")
        return _matching(agents, spec, started, held)

    def _adopt(self, client: PhoneApiClient, adopt_id: str, spec: dict[str, Any]) -> dict[str, Any]:
        """The outputs of live agent ``adopt_id`` after bringing it to ``spec``."""
        label = _label(spec, adopt_id)
        operation = f"adopt phone agent {label}"
        live = client.find(adopt_id, operation=operation)
        if live is None:
            raise _missing(
                operation,
                f"no agent with id {adopt_id!r} exists in this organisation. If adopt_id is mistyped, correct it "
                "(`oppie-pulumi generate` lists the ids); if this stack adopted that agent before and it was "
                "deleted elsewhere since, remove adopt_id (it has done its job) and run `pulumi up` again to "
                "create a new agent (`pulumi up --refresh` does that by itself when it sees the agent gone)",
            )
        current = outputs_from_agent(live)
        if normalized("model", current["model"]) != normalized("model", spec["model"]):
            raise ConfigError(
                f"adopt phone agent {label} failed: the live agent uses model {current['model']!r} but "
                f"the program declares {spec['model']!r}; model cannot be changed after creation, so "
                f"declare model={current['model']!r} to adopt it (changing it later replaces the agent)"
            )
        return self._patch(client, adopt_id, current, spec, label)

    def _patch(
        self,
        client: PhoneApiClient,
        agent_id: str,
        olds: Mapping[str, Any],
        news: Mapping[str, Any],
        label: str,
    ) -> dict[str, Any]:
        """The outputs after PATCHing the agent from ``olds`` (outputs) to ``news`` (inputs)."""
        # Only what changed, with nulls kept (null clears a field), and never the immutable model.
        fields = [name for name in _changed(olds, news) if name not in REPLACE_ON_CHANGE]
        if not fields:
            return {name: olds.get(name) for name in OUTPUT_FIELDS}
        body = {API_NAMES[name]: api_value(name, news.get(name)) for name in fields}
        failure: OppieError | None = None
        try:
            agent = client.update(agent_id, body, label=label)
        except AMBIGUOUS as exc:
            failure = exc
        if failure is not None:
            if isinstance(failure, TransportError) and not failure.may_have_reached_api:
                raise failure  # never sent: nothing changed, and nothing to look for
            # Retries ran out without an answer, but the PATCH may have landed: if the live agent
            # already has every value we sent, the update did happen.
            try:
                agent = client.find(agent_id, operation=f"check whether the update of phone agent {label} landed")
            except OppieError as look:
                raise failure.amended(f"; checking whether it landed anyway failed too ({look})") from None
            live = outputs_from_agent(agent) if agent else {}
            if agent is None or any(normalized(f, live[f]) != normalized(f, news.get(f)) for f in fields):
                raise failure
        if agent is None:
            # Older API versions answer PATCH with an empty body: read the agent back.
            agent = client.find(agent_id, operation=f"read back phone agent {label} after its update")
            if agent is None:
                raise _missing(f"update phone agent {label}", "the agent disappeared right after the update")
        return outputs_from_agent(agent)

    @staticmethod
    def _with_adopt_id(outputs: dict[str, Any], props: Mapping[str, Any]) -> dict[str, Any]:
        # Kept in state so that the next diff compares like with like; it has no effect after create.
        if props.get(ADOPT_ID) is not None:
            outputs[ADOPT_ID] = props[ADOPT_ID]
        return outputs

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """The live agent from GET /phone; an agent deleted elsewhere drops out of state."""
        operation = f"read phone agent {_label(props, id_)}"
        agent = self._client().find(id_, operation=operation, max_age=READ_SNAPSHOT_SECONDS)
        if agent is None:
            if props.get(LOOKUP):
                # PhoneAgent.get: an empty answer would be taken by the engine as found, with every output None.
                raise _missing(
                    f"look up phone agent {id_!r} (PhoneAgent.get)",
                    f"no agent with id {id_!r} exists in this organisation",
                )
            # A refresh: the agent was deleted elsewhere, so it drops out of the state.
            _Run.saw_vanished(id_)
            return ReadResult(None, {})
        _Run.saw_held(id_)
        self._claim(id_)
        outputs = self._with_adopt_id(outputs_from_agent(agent), props)
        # What the identity outputs were at the last deployment (a mark not yet cleared by an update keeps them).
        mark = props.get(REASSIGNED)
        before = {name: props.get(name) for name in IDENTITY_OUTPUTS} | (mark if isinstance(mark, dict) else {})
        reassigned = {
            name: before[name]
            for name in IDENTITY_OUTPUTS
            if before.get(name) is not None and outputs.get(name) != before[name]
        }
        if reassigned:
            outputs[REASSIGNED] = reassigned
        # Inputs follow the live agent too, so `pulumi refresh` shows drift as a diff.
        inputs = {name: outputs[name] for name in INPUT_FIELDS}
        if ADOPT_ID in outputs:
            inputs[ADOPT_ID] = outputs[ADOPT_ID]
        return ReadResult(id_, outputs, inputs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """PATCH /phone/{id} with only the changed fields; returns the full outputs."""
        _Run.saw_held(id_)
        try:
            outputs = self._patch(self._client(), id_, olds, _spec(news), _label(news, id_))
        except NotFound as exc:
            gone = exc
        else:
            return UpdateResult(self._with_adopt_id(outputs, news))
        raise gone.amended(UPDATE_OF_DELETED_FIX)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        """DELETE /phone/{id}; an agent already gone is success."""
        _Run.saw_held(id_)
        if _Run.adopted_here(id_):
            # A create of this run adopted this agent for the resource that replaces this one (see _Run).
            return
        client = self._client()
        label = _label(props, id_)
        try:
            client.delete(id_, label=label)
        except NotFound:
            return  # 404 on delete: already gone, which is what delete wants.
        except AMBIGUOUS as exc:
            failure: OppieError = exc
        else:
            return
        if isinstance(failure, TransportError) and not failure.may_have_reached_api:
            raise failure  # never sent (its message says so): the agent is still there
        # No answer, but the DELETE may have landed: gone from the list means deleted.
        try:
            still_there = client.find(id_, operation=f"check whether the delete of phone agent {label} landed")
        except OppieError as look:
            raise failure.amended(f"; checking whether it landed anyway failed too ({look})") from None
        if still_there:
            raise failure


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
        # Outputs present as None so that Pulumi exposes them as attributes.
        props.update(dict.fromkeys(COMPUTED_OUTPUTS))
        _warn_if_token_in_plain_text()
        with _pickler_restored():
            super().__init__(_PROVIDER, resource_name, props, opts)

    @staticmethod
    def get(resource_name: str, id: pulumi.Input[str], opts: pulumi.ResourceOptions | None = None) -> PhoneAgent:
        """Look up an existing agent by id; Pulumi reads it and does not manage it."""
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
