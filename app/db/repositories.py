"""Repositories: collections of domain objects over one connection. They never commit."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.models import AiChatRow, ConversationRow, MessageRow, RunEventRow, RunRow, TaskRow
from app.domain import (
    Conversation,
    ConversationState,
    Idempotency,
    Message,
    MessageStatus,
    NewMessage,
    Role,
    Run,
    RunStatus,
    StartedRun,
    Task,
    TaskChanges,
    TaskFilter,
    ToolCall,
    Usage,
    storable,
    storable_json,
)
from app.events import LoggedEvent

NOTIFY_CHANNEL = "todo_chat_runs"
# The advisory lock class of a user's lock (the first key of the two-key form).
USER_LOCK_CLASS = 7301

_CONVERSATION_COLUMNS = (
    ConversationRow.id,
    ConversationRow.user_id,
    ConversationRow.title,
    ConversationRow.created_at,
    ConversationRow.updated_at,
)
_MESSAGE_COLUMNS = (
    MessageRow.id,
    MessageRow.conversation_id,
    MessageRow.role,
    MessageRow.content,
    MessageRow.status,
    MessageRow.created_at,
    MessageRow.tool_calls,
    MessageRow.usage,
)
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
_TASK_COLUMNS = (
    TaskRow.id,
    TaskRow.user_id,
    TaskRow.title,
    TaskRow.description,
    TaskRow.completed,
    TaskRow.created_at,
    TaskRow.updated_at,
)


# The statements of the hot path are built once: building a statement costs more CPU than
# sending it. Parameters come at execution.
_GET_CONVERSATION = select(*_CONVERSATION_COLUMNS).where(
    ConversationRow.id == bindparam("conversation_key"),
    ConversationRow.user_id == bindparam("user_key"),
)
_AI_CHAT_CONVERSATION = select(AiChatRow.conversation_id).where(
    AiChatRow.user_id == bindparam("user_key"), AiChatRow.chat_id == bindparam("chat_key")
)
# A new conversation and the AI SDK chat id that names it, in one statement.
_ADD_AI_CHAT = text("""
WITH conversation AS (
    INSERT INTO conversations (user_id, title) VALUES (:user_key, :title) RETURNING id
)
INSERT INTO ai_chats (user_id, chat_id, conversation_id)
SELECT :user_key, :chat_key, id FROM conversation
RETURNING conversation_id
""")
_RECENT_MESSAGES = (
    select(*_MESSAGE_COLUMNS)
    .where(MessageRow.conversation_id == bindparam("conversation_key"))
    .order_by(MessageRow.id.desc())
    .limit(bindparam("limit_key"))
)
_ADD_TASK = insert(TaskRow).returning(*_TASK_COLUMNS)
_LOCK_USER = select(
    func.pg_advisory_xact_lock(USER_LOCK_CLASS, func.hashtext(bindparam("lock_key")))
)
_SHARE_RUN = select(RunRow.id).where(RunRow.id == bindparam("run_key")).with_for_update(read=True)
_ACTIVE_RUN_IN_CONVERSATION = select(*_RUN_COLUMNS).where(
    RunRow.conversation_id == bindparam("conversation_key"),
    RunRow.status == RunStatus.ACTIVE.value,
)
_COUNT_ACTIVE_RUNS = select(func.count()).where(
    RunRow.user_id == bindparam("user_key"), RunRow.status == RunStatus.ACTIVE.value
)
# One statement for any number of events (arrays, not one VALUES row per event: the same
# prepared statement whatever the count). An event already logged (a retried batch whose first
# commit went through, or the end an orphan-closing instance wrote) is kept as it is.
_APPEND_EVENTS = text("""
INSERT INTO run_events (run_id, seq, data)
SELECT * FROM unnest(
    CAST(:run_keys AS uuid[]), CAST(:seq_values AS integer[]), CAST(:data_values AS text[])
)
ON CONFLICT DO NOTHING
""")
# A page of a run's log: at most `limit_key` events, and of those as many as fit in
# `budget_key` bytes of JSON (at least one; no budget, no such bound). The running sum goes row
# by row in `seq` order and the scan stops at the limit; `octet_length` reads a stored value's
# size without unpacking it.
_EVENTS_AFTER = text("""
SELECT seq, data FROM (
    SELECT seq, data,
        sum(octet_length(data)) OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING) AS upto,
        row_number() OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING) AS n
    FROM run_events
    WHERE run_id = CAST(:run_key AS uuid) AND seq > CAST(:seq_key AS integer)
    ORDER BY seq
    LIMIT CAST(:limit_key AS integer)
) AS page
WHERE n = 1 OR CAST(:budget_key AS bigint) IS NULL OR upto <= CAST(:budget_key AS bigint)
ORDER BY seq
""")
# One statement for any number of notifications: one per run in an event-log batch. The
# channel comes as a parameter (`NOTIFY_CHANNEL`), here and below.
_NOTIFY = text("SELECT pg_notify(:channel, m) FROM unnest(CAST(:messages AS text[])) m")
# Both in one statement, hence one round trip; a data-modifying WITH always runs to completion.
_APPEND_EVENTS_AND_NOTIFY = text("""
WITH appended AS (
    INSERT INTO run_events (run_id, seq, data)
    SELECT * FROM unnest(
        CAST(:run_keys AS uuid[]), CAST(:seq_values AS integer[]), CAST(:data_values AS text[])
    )
    ON CONFLICT DO NOTHING
)
SELECT pg_notify(:channel, m) FROM unnest(CAST(:messages AS text[])) m
""")
# A run's start, with its user's message, in one statement (after the user's lock): the
# conversation (new, or touched), the message, the run for it; then the ids, the answer's
# reserved.
_START_RUN_IN_NEW_CONVERSATION = text("""
WITH conversation AS (
    INSERT INTO conversations (user_id, title) VALUES (:user_key, :title) RETURNING id
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
# A run's final event in the log: the first `done` or `error` (encode() writes `type` first).
_FINAL_EVENT = text("""
SELECT seq, data FROM run_events
WHERE run_id = :run_key AND (data LIKE '{"type":"done"%' OR data LIKE '{"type":"error"%')
ORDER BY seq LIMIT 1
""")
_BEAT = text("""
INSERT INTO instances (id) VALUES (:instance)
ON CONFLICT (id) DO UPDATE SET beat_at = now()
""")
_GONE_INSTANCES = text("""
SELECT r.instance_id FROM runs r LEFT JOIN instances i ON i.id = r.instance_id
WHERE r.status = 'active'
GROUP BY r.instance_id
HAVING coalesce(max(i.beat_at), min(r.created_at)) < now() - make_interval(secs => :silent)
""")
_FORGET_INSTANCE = text("DELETE FROM instances WHERE id = :instance")
_PRUNE_INSTANCES = text("""
DELETE FROM instances i
WHERE i.beat_at < now() - make_interval(secs => :silent)
    AND NOT EXISTS (SELECT FROM runs r WHERE r.instance_id = i.id AND r.status = 'active')
""")
_CONVERSATION_STATE = text("""
SELECT
    (SELECT id FROM runs WHERE conversation_id = c.id AND status = 'active'),
    (SELECT count(*) FROM runs WHERE user_id = c.user_id AND status = 'active')
FROM conversations c WHERE c.id = :conversation_key AND c.user_id = :user_key
""")
# A run's end in one statement: its status, its answer (with the id reserved at its start),
# the conversation's activity, its last events and their notification; nothing at all if the
# run had already ended (another instance closed it).
_END_RUN = text("""
WITH finished AS (
    UPDATE runs SET status = :run_status, assistant_message_id = :answer_key,
        last_seq = :last_seq, finished_at = now()
    WHERE id = :run_key AND status = 'active'
    RETURNING conversation_id
), answer AS (
    INSERT INTO messages (id, conversation_id, role, content, status, tool_calls, usage)
    SELECT CAST(:answer_key AS bigint), conversation_id, 'assistant', CAST(:content AS text),
        CAST(:message_status AS text), CAST(:tool_calls AS jsonb), CAST(:usage AS jsonb)
    FROM finished
), touched AS (
    UPDATE conversations SET updated_at = now() WHERE id IN (SELECT conversation_id FROM finished)
), appended AS (
    INSERT INTO run_events (run_id, seq, data)
    SELECT events.* FROM unnest(
        CAST(:run_keys AS uuid[]), CAST(:seq_values AS integer[]), CAST(:data_values AS text[])
    ) AS events
    WHERE EXISTS (SELECT FROM finished)
    ON CONFLICT DO NOTHING
)
SELECT pg_notify(:channel, CAST(:notification AS text)) FROM finished
""")


class ConversationRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def get(self, user_id: str, conversation_id: int) -> Conversation | None:
        keys = {"conversation_key": conversation_id, "user_key": user_id}
        row = (await self._connection.execute(_GET_CONVERSATION, keys)).one_or_none()
        return None if row is None else Conversation(*row)

    async def list(
        self, user_id: str, *, limit: int, before: tuple[datetime, int] | None = None
    ) -> list[Conversation]:
        """The most recently active first; with `before` (an `updated_at` and an id), those
        that come after it in that order."""
        statement = (
            select(*_CONVERSATION_COLUMNS)
            .where(ConversationRow.user_id == user_id)
            .order_by(ConversationRow.updated_at.desc(), ConversationRow.id.desc())
            .limit(limit)
        )
        if before is not None:
            statement = statement.where(
                tuple_(ConversationRow.updated_at, ConversationRow.id) < tuple_(*before)
            )
        return [Conversation(*row) for row in await self._connection.execute(statement)]

    async def of_ai_chat(self, user_id: str, chat_id: str) -> int | None:
        """The conversation an AI SDK client's chat id names, if any."""
        keys = {"user_key": user_id, "chat_key": chat_id}
        found: int | None = (await self._connection.execute(_AI_CHAT_CONVERSATION, keys)).scalar()
        return found

    async def add_for_ai_chat(self, user_id: str, chat_id: str, title: str) -> int:
        """A new conversation named by the chat id (under the user's lock: one per chat id)."""
        keys = {"user_key": user_id, "chat_key": chat_id, "title": title}
        conversation_id: int = (await self._connection.execute(_ADD_AI_CHAT, keys)).scalar_one()
        return conversation_id

    async def state(self, user_id: str, conversation_id: int) -> ConversationState | None:
        """None if the user has no such conversation."""
        keys = {"conversation_key": conversation_id, "user_key": user_id}
        row = (await self._connection.execute(_CONVERSATION_STATE, keys)).one_or_none()
        if row is None:
            return None
        active_run, active_runs = row
        return ConversationState(None if active_run is None else str(active_run), active_runs)

    async def delete(self, user_id: str, conversation_id: int) -> bool:
        statement = (
            delete(ConversationRow)
            .where(ConversationRow.id == conversation_id, ConversationRow.user_id == user_id)
            .returning(ConversationRow.id)
        )
        return (await self._connection.execute(statement)).one_or_none() is not None


class MessageRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def recent(self, conversation_id: int, *, limit: int) -> list[Message]:
        """The last `limit` messages, oldest first."""
        if limit == 0:
            return []
        keys = {"conversation_key": conversation_id, "limit_key": limit}
        rows = list(await self._connection.execute(_RECENT_MESSAGES, keys))
        return [_message_from_row(row) for row in reversed(rows)]

    async def list(
        self, conversation_id: int, *, limit: int, before_id: int | None = None
    ) -> list[Message]:
        """The last `limit` messages (before the message `before_id`), oldest first."""
        statement = (
            select(*_MESSAGE_COLUMNS)
            .where(MessageRow.conversation_id == conversation_id)
            .order_by(MessageRow.id.desc())
            .limit(limit)
        )
        if before_id is not None:
            statement = statement.where(MessageRow.id < before_id)
        rows = list(await self._connection.execute(statement))
        return [_message_from_row(row) for row in reversed(rows)]


class TaskRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, user_id: str, title: str, description: str | None) -> Task:
        values = {
            "user_id": user_id,
            "title": storable(title),
            "description": None if description is None else storable(description),
        }
        return Task(*(await self._connection.execute(_ADD_TASK, values)).one())

    async def list(
        self, user_id: str, status: TaskFilter, *, limit: int, after_id: int = 0
    ) -> list[Task]:
        """In the order they were added, from the one after `after_id`."""
        statement = (
            select(*_TASK_COLUMNS)
            .where(TaskRow.user_id == user_id, TaskRow.id > after_id)
            .order_by(TaskRow.id)
            .limit(limit)
        )
        if status is not TaskFilter.ALL:
            statement = statement.where(TaskRow.completed.is_(status is TaskFilter.COMPLETED))
        return [Task(*row) for row in await self._connection.execute(statement)]

    async def update(self, user_id: str, task_id: int, changes: TaskChanges) -> Task | None:
        values: dict[str, Any] = {"updated_at": func.now()}
        if changes.title is not None:
            values["title"] = storable(changes.title)
        if changes.description is not None:
            values["description"] = storable(changes.description)
        if changes.completed is not None:
            values["completed"] = changes.completed
        statement = (
            update(TaskRow)
            .where(TaskRow.id == task_id, TaskRow.user_id == user_id)
            .values(values)
            .returning(*_TASK_COLUMNS)
        )
        row = (await self._connection.execute(statement)).one_or_none()
        return None if row is None else Task(*row)

    async def delete(self, user_id: str, task_id: int) -> Task | None:
        statement = (
            delete(TaskRow)
            .where(TaskRow.id == task_id, TaskRow.user_id == user_id)
            .returning(*_TASK_COLUMNS)
        )
        row = (await self._connection.execute(statement)).one_or_none()
        return None if row is None else Task(*row)


class RunRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def lock_user(self, user_id: str) -> None:
        """Serialize this transaction with the user's other run starts, on every instance."""
        await self._connection.execute(_LOCK_USER, {"lock_key": user_id})

    async def share_lock(self, run_id: str) -> None:
        """Wait for any statement changing the run to end, and keep the run from changing
        until this transaction ends."""
        await self._connection.execute(_SHARE_RUN, {"run_key": run_id})

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
        values["title"] = storable(title)
        statement = _START_RUN_IN_NEW_CONVERSATION
        return StartedRun(*(await self._connection.execute(statement, values)).one())

    async def end(
        self,
        run_id: str,
        status: RunStatus,
        answer: NewMessage,
        answer_id: int,
        last_events: Sequence[tuple[str, LoggedEvent]],
        notification: str,
    ) -> bool:
        """End an active run with its answer and last events (see `_END_RUN`); False, and
        nothing stored, if it had already ended."""
        values = {
            "run_key": uuid.UUID(run_id),
            "run_status": status.value,
            "answer_key": answer_id,
            "last_seq": last_events[-1][1].seq if last_events else 0,
            "content": storable(answer.content),
            "message_status": answer.status.value,
            "tool_calls": _jsonb([call.as_dict() for call in answer.tool_calls]),
            "usage": None if answer.usage is None else json.dumps(answer.usage.as_dict()),
            "notification": notification,
            "channel": NOTIFY_CHANNEL,
            **_event_arrays(last_events),
        }
        return (await self._connection.execute(_END_RUN, values)).first() is not None

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
        statement = (
            update(RunRow)
            .where(RunRow.id == uuid.UUID(run_id), RunRow.status == RunStatus.ACTIVE.value)
            .values(cancel_requested=True)
        )
        await self._connection.execute(statement)

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


class InstanceRepository:
    """The instances' heartbeats. An instance is gone once its heartbeat is older than the
    limit, by the database's clock (the instances' own clocks never compare)."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def beat(self, instance: str) -> None:
        await self._connection.execute(_BEAT, {"instance": instance})

    async def gone_with_active_runs(self, *, silent_seconds: float) -> list[str]:
        """Instances with runs still active whose heartbeat stopped `silent_seconds` ago or
        more (one that never beat counts from its oldest active run's start)."""
        keys = {"silent": silent_seconds}
        return list((await self._connection.execute(_GONE_INSTANCES, keys)).scalars())

    async def forget(self, instance: str) -> None:
        await self._connection.execute(_FORGET_INSTANCE, {"instance": instance})

    async def prune(self, *, silent_seconds: float) -> None:
        """Forget instances silent that long that have no active run left."""
        await self._connection.execute(_PRUNE_INSTANCES, {"silent": silent_seconds})


class RunEventRepository:
    """The runs' event log: append-only, read in order of `seq`."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def append(self, events: Sequence[tuple[str, LoggedEvent]]) -> None:
        if events:
            await self._connection.execute(_APPEND_EVENTS, _event_arrays(events))

    async def append_and_notify(
        self, events: Sequence[tuple[str, LoggedEvent]], *messages: str
    ) -> None:
        """`append()` and `notify()` in one statement."""
        values = {**_event_arrays(events), "messages": list(messages), "channel": NOTIFY_CHANNEL}
        await self._connection.execute(_APPEND_EVENTS_AND_NOTIFY, values)

    async def after(
        self, run_id: str, seq: int, *, limit: int = 1000, budget: int | None = None
    ) -> list[LoggedEvent]:
        """The events after `seq`, in order: at most `limit`, and with a `budget`, at most
        that many bytes of JSON (at least one event)."""
        keys = {
            "run_key": uuid.UUID(run_id),
            "seq_key": seq,
            "limit_key": limit,
            "budget_key": budget,
        }
        rows = await self._connection.execute(_EVENTS_AFTER, keys)
        return [LoggedEvent(number, data) for number, data in rows]

    async def final(self, run_id: str) -> LoggedEvent | None:
        """The run's final event, if the log holds one."""
        row = (await self._connection.execute(_FINAL_EVENT, {"run_key": uuid.UUID(run_id)})).first()
        return None if row is None else LoggedEvent(row.seq, row.data)

    async def notify(self, *messages: str) -> None:
        """Tell every instance listening; delivered when the transaction commits."""
        if messages:
            values = {"messages": list(messages), "channel": NOTIFY_CHANNEL}
            await self._connection.execute(_NOTIFY, values)

    async def prune(self, *, older_than_seconds: float, limit: int) -> int:
        """Delete the events of up to `limit` runs finished longer ago than that."""
        expired = (
            select(RunRow.id)
            .where(
                RunRow.status != RunStatus.ACTIVE.value,
                RunRow.finished_at < datetime.now(UTC) - timedelta(seconds=older_than_seconds),
                select(literal_column("1")).where(RunEventRow.run_id == RunRow.id).exists(),
            )
            .limit(limit)
        )
        statement = delete(RunEventRow).where(RunEventRow.run_id.in_(expired))
        result = await self._connection.execute(statement)
        return int(result.rowcount or 0)


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


def _event_arrays(events: Sequence[tuple[str, LoggedEvent]]) -> dict[str, list[Any]]:
    keys: dict[str, uuid.UUID] = {}
    return {
        "run_keys": [keys.get(run) or keys.setdefault(run, uuid.UUID(run)) for run, _ in events],
        "seq_values": [event.seq for _, event in events],
        "data_values": [event.data for _, event in events],
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


def _message_from_row(row: Sequence[Any]) -> Message:
    id_, conversation_id, role, content, status, created_at, tool_calls, usage = row
    return Message(
        id=id_,
        conversation_id=conversation_id,
        role=Role(role),
        content=content,
        status=MessageStatus(status),
        created_at=created_at,
        tool_calls=tuple(ToolCall(**call) for call in tool_calls or ()),
        usage=None if usage is None else Usage(**usage),
    )
