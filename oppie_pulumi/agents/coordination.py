"""Who holds which agent, and identical creates one at a time: the bookkeeping behind a safe reconciliation.

After an unanswered POST the core lists the agents and takes the one its POST made: same spec, made since it
began, held by nobody it knows of (``reconcile``). Two creates of one spec running at once could then take each
other's agent (two resources holding one agent: destroying one deletes the other's). So they do not run at once:
per spec, within this process (a lock) and across the processes of this machine (a file lock, shared with the
ids such creates ended up holding, so that a later look never takes an agent another stack already holds).
Across machines nothing is shared: an agent that appeared just before a create began is then never taken, only
named.

Three records, all process-wide and thread-safe (a provider host serves several calls at once):

- ``Claims``: the ids this process has seen held by a resource (created, adopted, read, updated);
- ``MachineRecord``: the ids that creates of this machine ended up holding, in the lock file of their spec;
- ``RunMemory``: what this process has seen of the stack during one CLI run, for ``adopt_id``.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

try:
    import fcntl
except ImportError:  # Windows: identical creates are then serialised within one process only
    fcntl = None  # type: ignore[assignment]

from .._exceptions import OppieError
from .._models import api_body

__all__ = [
    "CLAIMS",
    "RUN",
    "Claims",
    "MachineRecord",
    "RunMemory",
    "coordination_dir",
    "identical_creates_one_at_a_time",
    "spec_key",
]

# Identical creates on one machine wait at most this long for each other before failing, saying so.
CREATE_LOCK_WAIT_SECONDS = 600.0
# How long the ids that creates of this machine ended up holding are kept for the looks of later creates.
HELD_IDS_SECONDS = 3600.0
# The machine record is compacted (stale lines dropped) once its file grows past this many bytes.
_RECORD_COMPACT_BYTES = 64 * 1024


class Claims:
    """The ids this process has seen held by a resource: never a candidate for another create's look."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def claim(self, agent_id: str) -> None:
        with self._lock:
            self._ids.add(agent_id)

    def ids(self) -> set[str]:
        with self._lock:
            return set(self._ids)


class RunMemory:
    """What this process has seen of the stack during one CLI run (one provider host serves one command).

    The engine re-runs Check *without the old inputs* when it replaces a resource, when ``--replace`` targets it
    and when it creates one whose agent vanished, so ``adopt_id`` comes back into the inputs of that create. The
    core cannot tell such a create from a first adoption by its inputs; what it can tell is whether the engine
    has shown it, earlier in the same run, that the stack already holds (or held) that agent: in a Diff, an
    Update, a Read, a Delete, or the old inputs of a Check. A create naming such an agent is a replacement and
    makes a new agent; and an agent a create adopted in this run is never deleted by a later delete of the same
    run (a targeted ``--replace`` gives no sign before its create, so the create adopts the agent again and the
    old resource's delete must leave it to the new one).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.held: set[str] = set()
        self.vanished: set[str] = set()
        self.adopted: set[str] = set()

    def saw_held(self, agent_id: Any) -> None:
        # Every diff of a preview says so: an id already seen costs no lock.
        if isinstance(agent_id, str) and agent_id and agent_id not in self.held:
            with self._lock:
                self.held.add(agent_id)

    def saw_vanished(self, agent_id: str) -> None:
        with self._lock:
            self.vanished.add(agent_id)

    def saw_adopted(self, agent_id: str) -> None:
        with self._lock:
            self.adopted.add(agent_id)

    def is_replacement(self, adopt_id: str) -> bool:
        with self._lock:
            return adopt_id in self.held or adopt_id in self.vanished

    def adopted_here(self, agent_id: str) -> bool:
        with self._lock:
            return agent_id in self.adopted


# The process's records: the dynamic provider host unpickles a new provider object for each resource, so what
# one call learns must outlive the object that learnt it.
CLAIMS = Claims()
RUN = RunMemory()


def spec_key(base_url: str, spec: Mapping[str, Any]) -> str:
    """One spec at one API, as a hex digest: identical creates share it."""
    # A checked spec holds JSON values only (strings, booleans, nulls, lists of strings): no ``default`` needed,
    # which keeps json's C encoder.
    body = json.dumps([base_url, api_body(spec)], sort_keys=True)
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


class MachineRecord:
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
            return  # not an id that can be written one per line; the in-process claims still hold it
        line = f"{time.time():.0f} {agent_id}\n".encode()
        with self._guard:
            # One append (the file is opened for appending), with no buffer to flush: every create pays for it.
            fd = self._handle.fileno()
            os.write(fd, line)
            if os.lseek(fd, 0, os.SEEK_CUR) > _RECORD_COMPACT_BYTES:
                keep = [f"{time.time():.0f} {held}" for held in self._read()]
                self._handle.seek(0)
                self._handle.truncate()
                self._handle.write("".join(held + "\n" for held in keep))
                self._handle.flush()


_FOLDERS: dict[str, Path | None] = {}


def coordination_dir() -> Path | None:
    """A folder only this user can write, shared by this user's processes; None where there is none.

    Looked up once per process (and temporary folder): every create takes its lock.
    """
    tmp = tempfile.gettempdir()
    if tmp not in _FOLDERS:
        _FOLDERS[tmp] = _make_coordination_dir(tmp)
    return _FOLDERS[tmp]


def _make_coordination_dir(tmp: str) -> Path | None:
    uid = os.getuid() if hasattr(os, "getuid") else None
    folder = Path(tmp) / f"oppie-pulumi-{uid if uid is not None else 'user'}" / "creates"
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
    The file stays open between holds (opening it costs more than the lock), up to ``_IDLE_HANDLES`` of them.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.state = threading.Condition()
        self.users = 0
        self.acquiring = False
        self.handle: IO[str] | None = None
        self.locked = False


_BUCKETS: dict[str, _Bucket] = {}
_BUCKETS_GUARD = threading.Lock()
# Lock files kept open while no create of this process holds them; more are closed as they are let go.
_IDLE_HANDLES = 16
_open_idle = [0]


def _lock_file(bucket: _Bucket, label: str) -> IO[str] | None:
    """The bucket's file, flock-ed (waiting for other processes); None if it cannot be opened."""
    handle = bucket.handle
    if handle is None:
        try:
            handle = open(bucket.path, "a+", encoding="utf-8")  # noqa: SIM115 (kept open by the bucket)
        except OSError:
            _FOLDERS.clear()  # the folder went (a cleaner of /tmp): look for it again next time
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
                bucket.handle = None
                raise OppieError(
                    f"create phone agent {label} failed: another process on this machine has been creating an "
                    f"identical agent for {CREATE_LOCK_WAIT_SECONDS:.0f} s (it holds {bucket.path}). If no "
                    "`pulumi` command is running, delete that file and run `pulumi up` again."
                ) from None
            time.sleep(pause)
            pause = min(pause * 2, 0.1)


@atexit.register
def _close_lock_files() -> None:
    """Close the lock files kept open between creates (the process ends; the locks were let go already)."""
    with _BUCKETS_GUARD:
        for bucket in _BUCKETS.values():
            with bucket.state:
                if bucket.handle is not None and not bucket.locked:
                    bucket.handle.close()
                    bucket.handle = None


@contextlib.contextmanager
def _machine_lock(key: str, label: str) -> Iterator[MachineRecord | None]:
    """This machine's lock of the bucket of one spec, with the ids its creates ended up holding."""
    folder = coordination_dir() if fcntl is not None else None
    if folder is None:
        yield None
        return
    path = f"{folder}{os.sep}{key[:2]}.lock"
    with _BUCKETS_GUARD:
        bucket = _BUCKETS.get(path)
        if bucket is None:
            bucket = _BUCKETS[path] = _Bucket(path)
    with bucket.state:
        bucket.users += 1
        while bucket.acquiring:
            bucket.state.wait()
        first = not bucket.locked
        bucket.acquiring = first
    try:
        if first:
            if bucket.handle is not None:
                with _BUCKETS_GUARD:
                    _open_idle[0] -= 1  # in use again
            handle = _lock_file(bucket, label)
            with bucket.state:
                bucket.handle, bucket.locked, bucket.acquiring = handle, handle is not None, False
                bucket.state.notify_all()
        yield MachineRecord(bucket.handle, bucket.state) if bucket.locked and bucket.handle is not None else None
    finally:
        with bucket.state:
            if first:
                bucket.acquiring = False  # also when taking the lock failed: the next thread tries
            bucket.users -= 1
            if not bucket.users and bucket.locked and bucket.handle is not None:
                fcntl.flock(bucket.handle, fcntl.LOCK_UN)
                bucket.locked = False
                with _BUCKETS_GUARD:
                    if _open_idle[0] < _IDLE_HANDLES:
                        _open_idle[0] += 1
                    else:
                        bucket.handle.close()
                        bucket.handle = None
            bucket.state.notify_all()


@contextlib.contextmanager
def identical_creates_one_at_a_time(
    base_url: str, spec: Mapping[str, Any], label: str
) -> Iterator[MachineRecord | None]:
    """Hold the process's and the machine's lock of ``spec`` at ``base_url``; yields the machine's record of
    held ids (None where the machine offers no shared folder)."""
    key = spec_key(base_url, spec)
    with _spec_lock(key), _machine_lock(key, label) as record:
        yield record
