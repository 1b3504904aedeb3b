"""Runs: chat turns, from the user's message (their start) to the stored answer (their end)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    bindparam,
    func,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.models import RunRow
from app.domain import (
    Idempotency,
    NewMessage,
    Run,
    RunStatus,
    StartedRun,
    storable,
    storable_json,
)
from app.events import LoggedEvent

# The advisory lock class of a user's lock (the first key of the two-key form).
USER_LOCK_CLASS = 7301

_RUN_COLUMNS = (
    RunRow.id,
    RunRow.user_id,
    RunRow.conversation_id,
    RunRow.status,
    RunRow.user_message_id,
    RunRow.assistant_message_id,
    RunRow.last_seq,
    RunRow.created_at,
    RunRow.finished_at,
)

_LOCK_USER = select(
    func.pg_advisory_xact_lock(USER_LOCK_CLASS, func.hashtext(bindparam("lock_key")))
)

_ACTIVE_RUN_IN_CONVERSATION = select(*_RUN_COLUMNS).where(
    RunRow.conversation_id == bindparam("conversation_key"),
    RunRow.status == RunStatus.ACTIVE.value,
)

_COUNT_ACTIVE_RUNS = select(func.count()).where(
    RunRow.user_id == bindparam("user_key"), RunRow.status == RunStatus.ACTIVE.value
)

# A run's start, with its user's message, in one statement (after the user's lock): the
# conversation (new, or touched), the message, the run for it; then the ids, the answer's
# reserved. In a new conversation, nothing at all past `max_active` active runs of the user
# (the check a round trip of its own would make; the user's lock keeps it true until commit).
_START_IN_NEW = text("""
WITH conversation AS (
    INSERT INTO conversations (user_id, title)
    SELECT CAST(:user_key AS text), CAST(:title AS text)
    WHERE CAST(:max_active AS integer) IS NULL OR (
        SELECT count(*) FROM runs WHERE user_id = :user_key AND status = 'active'
    ) < :max_active
    RETURNING id
), message AS (
    INSERT INTO messages (conversation_id, role, content, status, tool_calls)
    SELECT id, 'user', CAST(:content AS text), 'complete', '[]' FROM conversation
    RETURNING id, conversation_id
), run AS (
    INSERT INTO runs (id, user_id, conversation_id, user_message_id, instance_id,
        idempotency_key, request_digest)
    SELECT CAST(:run_key AS uuid), CAST(:user_key AS text), conversation_id, id,
        CAST(:instance AS text), CAST(:idempotency_key AS text), CAST(:request_digest AS text)
    FROM message
)
SELECT conversation_id, id, nextval(pg_get_serial_sequence('messages', 'id')) FROM message
""")

_START_RUN = text("""
WITH touched AS (
    UPDATE conversations SET updated_at = now() WHERE id = :conversation_key
), message AS (
    INSERT INTO messages (conversation_id, role, content, status, tool_calls)
    VALUES (:conversation_key, 'user', :content, 'complete', '[]')
    RETURNING id, conversation_id
), run AS (
    INSERT INTO runs (id, user_id, conversation_id, user_message_id, instance_id,
        idempotency_key, request_digest)
    SELECT CAST(:run_key AS uuid), CAST(:user_key AS text), conversation_id, id,
        CAST(:instance AS text), CAST(:idempotency_key AS text), CAST(:request_digest AS text)
    FROM message
)
SELECT conversation_id, id, nextval(pg_get_serial_sequence('messages', 'id')) FROM message
""")

_RESERVE_MESSAGE_ID = text("SELECT nextval(pg_get_serial_sequence('messages', 'id'))")

CANCELS_CHANNEL = "todo_chat_cancels"
"""Where a cancel asked on one instance is announced to the others: the run's id."""

# A run's end: its status and final event, its answer (with the id reserved at its start), the
# conversation's activity; nothing at all if the run had already ended (another closer was
# first). The `WITH` clauses of a statement (`finished` is what it ended), so that the
# PostgreSQL event log can end a run and log its last events in one statement
# (`app.db.repositories.run_events`).
END_RUN = """finished AS (
    UPDATE runs SET status = :run_status, assistant_message_id = :answer_key,
        last_seq = :final_seq, final_event = :final_data, finished_at = now()
    WHERE id = :run_key AND status = 'active'
    RETURNING conversation_id
), answer AS (
    INSERT INTO messages (id, conversation_id, role, content, status, tool_calls, usage)
    SELECT CAST(:answer_key AS bigint), conversation_id, 'assistant', CAST(:content AS text),
        CAST(:message_status AS text), CAST(:tool_calls AS jsonb), CAST(:usage AS jsonb)
    FROM finished
), touched AS (
    UPDATE conversations SET updated_at = now() WHERE id IN (SELECT conversation_id FROM finished)
)"""

# The end alone, answering the final event stored before if the run had ended already (the
# snapshot the statement reads is from before its own update).
_END_RUN = text(f"""
WITH {END_RUN}
SELECT true AS ended, NULL AS final_seq, NULL AS final_data FROM finished
UNION ALL
SELECT false, last_seq, final_event FROM runs
WHERE id = :run_key AND NOT EXISTS (SELECT FROM finished)
""")

# How a run stands, for a reader of its log: its final event only while its events are kept.
_STATE = text("""
SELECT status, last_seq,
    CASE WHEN finished_at >= now() - make_interval(secs => :kept) THEN final_event END
FROM runs WHERE id = :run_key
""")

# A cancel and its announcement in one statement: only an active run is asked.
_REQUEST_CANCEL = text("""
WITH asked AS (
    UPDATE runs SET cancel_requested = true WHERE id = :run_key AND status = 'active'
    RETURNING id
)
SELECT pg_notify(:channel, CAST(id AS text)) FROM asked
""")


class RunRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def lock_user(self, user_id: str) -> None:
        """Serialize this transaction with the user's other run starts, on every instance."""
        await self._connection.execute(_LOCK_USER, {"lock_key": user_id})

    async def start(
        self,
        run_id: str,
        user_id: str,
        conversation_id: int,
        message: str,
        instance: str,
        idempotency: Idempotency | None = None,
    ) -> StartedRun:
        """Store a run and its user's message in the conversation."""
        values = _start_values(run_id, user_id, message, instance, idempotency)
        values["conversation_key"] = conversation_id
        return StartedRun(*(await self._connection.execute(_START_RUN, values)).one())

    async def start_in_new_conversation(
        self,
        run_id: str,
        user_id: str,
        title: str,
        message: str,
        instance: str,
        idempotency: Idempotency | None = None,
    ) -> StartedRun:
        """Store a run and its user's message in a new conversation with this title."""
        values = _start_values(run_id, user_id, message, instance, idempotency)
        values.update(title=storable(title), max_active=None)
        return StartedRun(*(await self._connection.execute(_START_IN_NEW, values)).one())

    async def start_in_new_conversation_within(
        self,
        max_active: int,
        run_id: str,
        user_id: str,
        title: str,
        message: str,
        instance: str,
        idempotency: Idempotency | None = None,
    ) -> StartedRun | None:
        """`start_in_new_conversation` if the user has fewer than `max_active` active runs;
        else None, and nothing is stored. (Under the user's lock, the count stays true.)"""
        values = _start_values(run_id, user_id, message, instance, idempotency)
        values.update(title=storable(title), max_active=max_active)
        row = (await self._connection.execute(_START_IN_NEW, values)).one_or_none()
        return None if row is None else StartedRun(*row)

    async def end(
        self, run_id: str, status: RunStatus, answer: NewMessage, answer_id: int, final: LoggedEvent
    ) -> LoggedEvent | None:
        """End an active run with its answer and final event; if it had ended already, nothing
        is stored and the answer is the final event stored then (None: none was, or no such
        run)."""
        values = end_values(run_id, status, answer, answer_id, final)
        row = (await self._connection.execute(_END_RUN, values)).first()
        if row is None or row.ended:
            return None if row is None else final
        return None if row.final_data is None else LoggedEvent(row.final_seq, row.final_data)

    async def state(
        self, run_id: str, *, final_kept_seconds: float
    ) -> tuple[RunStatus, LoggedEvent | None, int] | None:
        """The run's status, its final event if it ended less than `final_kept_seconds` ago,
        and that event's seq (0 while it runs); None if there is no such run."""
        keys = {"run_key": uuid.UUID(run_id), "kept": final_kept_seconds}
        row = (await self._connection.execute(_STATE, keys)).first()
        if row is None:
            return None
        status, last_seq, final_data = row
        final = None if final_data is None else LoggedEvent(last_seq, final_data)
        return RunStatus(status), final, last_seq

    async def get(self, user_id: str, run_id: str) -> Run | None:
        try:
            key = uuid.UUID(run_id)
        except ValueError:
            return None
        statement = select(*_RUN_COLUMNS).where(RunRow.id == key, RunRow.user_id == user_id)
        row = (await self._connection.execute(statement)).one_or_none()
        return None if row is None else _run_from_row(row)

    async def by_idempotency_key(self, user_id: str, key: str) -> tuple[Run, str] | None:
        """The user's run started with this key, and the digest of the request that did."""
        statement = select(*_RUN_COLUMNS, RunRow.request_digest).where(
            RunRow.user_id == user_id, RunRow.idempotency_key == key
        )
        row = (await self._connection.execute(statement)).one_or_none()
        return None if row is None else (_run_from_row(row[:-1]), row[-1] or "")

    async def active_in_conversation(self, conversation_id: int) -> Run | None:
        keys = {"conversation_key": conversation_id}
        row = (await self._connection.execute(_ACTIVE_RUN_IN_CONVERSATION, keys)).one_or_none()
        return None if row is None else _run_from_row(row)

    async def count_active(self, user_id: str) -> int:
        keys = {"user_key": user_id}
        return int((await self._connection.execute(_COUNT_ACTIVE_RUNS, keys)).scalar_one())

    async def request_cancel(self, run_id: str) -> None:
        """Ask an active run to stop, and tell every instance (`CANCELS_CHANNEL`)."""
        keys = {"run_key": uuid.UUID(run_id), "channel": CANCELS_CHANNEL}
        await self._connection.execute(_REQUEST_CANCEL, keys)

    async def cancel_requested(self, run_ids: Sequence[str]) -> list[str]:
        """Which of these active runs have been asked to stop."""
        statement = select(RunRow.id).where(
            RunRow.id.in_([uuid.UUID(run_id) for run_id in run_ids]),
            RunRow.status == RunStatus.ACTIVE.value,
            RunRow.cancel_requested,
        )
        return [str(run_id) for run_id in (await self._connection.execute(statement)).scalars()]

    async def active_of_instance(self, instance: str) -> list[Run]:
        statement = select(*_RUN_COLUMNS).where(
            RunRow.instance_id == instance, RunRow.status == RunStatus.ACTIVE.value
        )
        return [_run_from_row(row) for row in await self._connection.execute(statement)]

    async def reserve_message_id(self) -> int:
        """An id for a message stored later (an orphaned run's answer)."""
        return int((await self._connection.execute(_RESERVE_MESSAGE_ID)).scalar_one())


def end_values(
    run_id: str, status: RunStatus, answer: NewMessage, answer_id: int, final: LoggedEvent
) -> dict[str, Any]:
    """The parameters of `END_RUN`."""
    return {
        "run_key": uuid.UUID(run_id),
        "run_status": status.value,
        "answer_key": answer_id,
        "final_seq": final.seq,
        "final_data": final.data,
        "content": storable(answer.content),
        "message_status": answer.status.value,
        "tool_calls": _jsonb([call.as_dict() for call in answer.tool_calls]),
        "usage": None if answer.usage is None else json.dumps(answer.usage.as_dict()),
    }


def _jsonb(value: Any) -> str:
    """JSON that PostgreSQL's jsonb takes (it refuses the `\\u0000` json.dumps writes)."""
    return json.dumps(storable_json(value), ensure_ascii=False)


def _start_values(
    run_id: str, user_id: str, message: str, instance: str, idempotency: Idempotency | None
) -> dict[str, Any]:
    """The parameters both statements that start a run take."""
    return {
        "run_key": uuid.UUID(run_id),
        "user_key": user_id,
        "content": storable(message),
        "instance": instance,
        "idempotency_key": None if idempotency is None else storable(idempotency.key),
        "request_digest": None if idempotency is None else idempotency.digest,
    }


def _run_from_row(row: Sequence[Any]) -> Run:
    (
        id_,
        user_id,
        conversation_id,
        status,
        user_message_id,
        assistant_id,
        last_seq,
        created,
        ended,
    ) = row
    return Run(
        id=str(id_),
        user_id=user_id,
        conversation_id=conversation_id,
        status=RunStatus(status),
        user_message_id=user_message_id,
        assistant_message_id=assistant_id,
        last_seq=last_seq,
        created_at=created,
        finished_at=ended,
    )
