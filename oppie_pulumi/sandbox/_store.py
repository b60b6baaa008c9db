"""SQLite persistence of the sandbox's agents (stdlib `sqlite3` only).

Each agent is one row: the columns the store looks things up by, and the agent itself as a JSON document in
the API's own shape, so what `AgentStore` returns is exactly what the API serves (before response faults).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

# The response field order of the seed, kept so the sandbox's JSON reads like the real API's.
AGENT_FIELDS = (
    "id",
    "org_id",
    "phone_number",
    "name",
    "type",
    "language",
    "accent",
    "handoff_phone_number",
    "interruptible",
    "actionIds",
    "instructions",
    "data_collection_fields",
    "data_collection_webhook_url",
    "model",
    "voice_id",
    "first_message",
    "created_at",
    "updated_at",
    "provider_external_id",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS agents (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    org_id TEXT NOT NULL,
    phone_number TEXT UNIQUE,
    created_at TEXT NOT NULL,
    document TEXT NOT NULL
)
"""


def utc_timestamp(offset_ms: int = 0, whole_seconds: bool = False) -> str:
    """Now as the API writes it: ISO 8601 UTC with milliseconds and Z, e.g. "2026-11-24T07:06:17.123Z".

    ``offset_ms`` and ``whole_seconds`` are the clock faults (``Faults.clock_offset_ms``,
    ``Faults.whole_second_stamps``): an API clock off real time, and stamps cut to the second.
    """
    now = datetime.now(timezone.utc) + timedelta(milliseconds=offset_ms)
    millis = 0 if whole_seconds else now.microsecond // 1000
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis:03d}Z"


class AgentStore:
    """The agents of one organisation, in a SQLite file (or in memory with ":memory:").

    One connection serves every thread (FastAPI runs sync endpoints in a thread pool), so every use of it
    holds the lock; each write is one committed transaction before the method returns.
    """

    def __init__(self, db_path: str, org_id: str, clock: Callable[[], str] = utc_timestamp) -> None:
        self.db_path = db_path
        self.org_id = org_id
        self.clock = clock  # the stamps' clock: the sandbox's clock faults go through it
        if db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(db_path, check_same_thread=False)
        with self._lock, self._conn:
            self._conn.execute(_SCHEMA)

    def create(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Provision an agent from a validated create body (API field names) and return it."""
        now = self.clock()
        with self._lock, self._conn:
            agent = dict(spec)
            agent.update(
                id=str(uuid.uuid4()),
                org_id=self.org_id,
                phone_number=self._new_phone_number(),
                # Shaped like a Twilio number SID, which is what the real API hands back.
                provider_external_id="PN" + secrets.token_hex(16),
                created_at=now,
                updated_at=now,
            )
            agent = {field: agent.get(field) for field in AGENT_FIELDS}
            self._conn.execute(
                "INSERT INTO agents (id, org_id, phone_number, created_at, document) VALUES (?, ?, ?, ?, ?)",
                (agent["id"], self.org_id, agent["phone_number"], now, json.dumps(agent)),
            )
            return agent

    def agents(self) -> list[dict[str, Any]]:
        """Every agent of the organisation, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT document FROM agents WHERE org_id = ? ORDER BY created_at, seq", (self.org_id,)
            ).fetchall()
        return [json.loads(document) for (document,) in rows]

    def get(self, agent_id: str) -> dict[str, Any] | None:
        """The agent with this id, or None."""
        with self._lock:
            return self._get(agent_id)

    def update(self, agent_id: str, changes: dict[str, Any]) -> dict[str, Any] | None:
        """Apply validated changes (API field names) and return the agent, or None if there is none."""
        with self._lock, self._conn:
            agent = self._get(agent_id)
            if agent is None:
                return None
            agent.update(changes)
            agent["updated_at"] = self.clock()
            self._conn.execute(
                "UPDATE agents SET document = ? WHERE id = ? AND org_id = ?",
                (json.dumps(agent), agent_id, self.org_id),
            )
            return agent

    def delete(self, agent_id: str) -> bool:
        """Delete the agent; False if there was none."""
        with self._lock, self._conn:
            cursor = self._conn.execute("DELETE FROM agents WHERE id = ? AND org_id = ?", (agent_id, self.org_id))
            return cursor.rowcount > 0

    def clear(self) -> None:
        """Delete every agent of the organisation."""
        with self._lock, self._conn:
            self._conn.execute("DELETE FROM agents WHERE org_id = ?", (self.org_id,))

    def close(self) -> None:
        """Close the database connection; the store is unusable afterwards."""
        with self._lock:
            self._conn.close()

    def _get(self, agent_id: str) -> dict[str, Any] | None:
        row = self._conn.execute(
            "SELECT document FROM agents WHERE id = ? AND org_id = ?", (agent_id, self.org_id)
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def _new_phone_number(self) -> str:
        # Numbers are unique across the whole database, like real numbers: one per provisioned agent.
        while True:
            number = "+1555" + "".join(secrets.choice("0123456789") for _ in range(7))
            taken = self._conn.execute("SELECT 1 FROM agents WHERE phone_number = ?", (number,)).fetchone()
            if taken is None:
                return number
