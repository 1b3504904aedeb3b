"""The chat service: one turn of a conversation, from the user's message to the stored answer.

Each turn is a run (see `app.runs`), with the model working between short database visits and
holding no connection: `send()`, the one way every protocol starts a turn, begins it in one
transaction (the user's lock, the checks, the history, a client thread's conversation the first
time, then the user's message and the run in one statement, which reserves the answer's id); each
tool call is one statement; the end of the run stores the assistant's message with the run's
last events in one statement (`app.answer`). The run goes on when its client goes away.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import anyio
from sqlalchemy.exc import IntegrityError

from app.agent import TodoAgent
from app.answer import TurnAnswer
from app.db.uow import Database, UnitOfWork
from app.domain import (
    ChatTurn,
    Conversation,
    ConversationNotFound,
    Idempotency,
    IdempotencyKeyReused,
    Message,
    Run,
    RunActive,
    RunNotFound,
    RunStatus,
    ShuttingDown,
    Thread,
    TooManyFollowers,
    TooManyRuns,
    conversation_title,
)
from app.events import MAX_SEQ, LoggedEvent
from app.runs.live import LiveRun
from app.runs.registry import RunRegistry

logger = logging.getLogger(__name__)

CANCEL_WAIT_SECONDS = 15
MAX_FOLLOWERS_PER_USER = 20
ACTIVE_RUN_INDEX = "uq_runs_conversation_id_active"


@dataclass(frozen=True)
class Sent:
    """A send's run: its id, and its events from the first."""

    run_id: str
    batches: AsyncIterator[list[LoggedEvent]]
    started: bool
    """This send started the run (else an earlier send with its idempotency key did)."""


class ChatService:
    def __init__(
        self,
        database: Database,
        agent: TodoAgent,
        registry: RunRegistry,
        *,
        history_messages: int,
        max_active_runs: int,
    ) -> None:
        self._database = database
        self._agent = agent
        self._registry = registry
        self._history_messages = history_messages
        self._max_active_runs = max_active_runs

    async def send(
        self,
        user_id: str,
        message: str,
        *,
        conversation_id: int | None = None,
        thread: Thread | None = None,
        cancel_active: bool = False,
        idempotency_key: str | None = None,
    ) -> Sent:
        """The user's message, sent: a new run answering it, in the conversation given, the one
        a client's `thread` names, or a new one. Every protocol's send comes here. A
        conversation has one run at a time: `cancel_active` stops the one going on.

        With an `idempotency_key` this user sent before with the same request, nothing is
        stored: the run that send started is followed from its first event (a client's retry
        joins or replays it). A refused send (`RunActive`, `TooManyRuns`, `ShuttingDown`…, or
        the database's error) stores nothing, not even a thread's conversation."""
        begun = await self._begin(
            user_id, message, conversation_id, thread, cancel_active, idempotency_key
        )
        if isinstance(begun, Run):
            return Sent(begun.id, self.follow(begun, 0), started=False)
        return Sent(begun.run_id, self.start(begun).subscribe(0).batches(), started=True)

    async def _begin(
        self,
        user_id: str,
        message: str,
        conversation_id: int | None,
        thread: Thread | None,
        cancel_active: bool,
        idempotency_key: str | None,
    ) -> ChatTurn | Run:
        """Store the user's message and its run (before any model work), with a thread's
        conversation the first time, in one transaction under the user's lock; read what the
        model needs. Or an earlier send's run, for its idempotency key."""
        if thread is not None and conversation_id is not None:
            raise ValueError("a send names a conversation or a thread, not both")
        if thread is not None or idempotency_key is not None:
            async with self._database.unit_of_work() as uow:
                conversation_id, earlier = await _named(
                    uow, user_id, message, conversation_id, thread, idempotency_key
                )
            if earlier is not None:
                return earlier
        if not self._registry.accepting:
            raise ShuttingDown
        await self._registry.check_log()
        if conversation_id is not None and cancel_active:
            await self._cancel_active(user_id, conversation_id)
        run_id = str(uuid.uuid4())
        instance = self._registry.instance_id
        history: list[Message] = []
        try:
            async with self._database.unit_of_work() as uow:
                await uow.runs.lock_user(user_id)
                # Again: another send may have made the thread's conversation, or used the key,
                # meanwhile (sent twice at once, the user's lock let the other one first).
                conversation_id, earlier = await _named(
                    uow, user_id, message, conversation_id, thread, idempotency_key
                )
                if earlier is not None:
                    return earlier
                if conversation_id is None:
                    if thread is not None:
                        if await uow.runs.count_active(user_id) >= self._max_active_runs:
                            raise TooManyRuns(self._max_active_runs)
                        title = conversation_title(message)
                        conversation_id = await uow.threads.add(user_id, thread, title)
                else:
                    state = await uow.conversations.state(user_id, conversation_id)
                    if state is None:
                        raise ConversationNotFound(conversation_id)
                    if state.active_run_id is not None:
                        raise RunActive(state.active_run_id)
                    if state.active_runs_of_user >= self._max_active_runs:
                        raise TooManyRuns(self._max_active_runs)
                    history = await uow.messages.recent(
                        conversation_id, limit=self._history_messages
                    )
                idempotency = (
                    None
                    if idempotency_key is None
                    else Idempotency.of(idempotency_key, message, conversation_id)
                )
                if conversation_id is None:
                    # The limit on active runs is checked in the same statement.
                    title = conversation_title(message)
                    limit = self._max_active_runs
                    new = await uow.runs.start_in_new_conversation_within(
                        limit, run_id, user_id, title, message, instance, idempotency
                    )
                    if new is None:
                        raise TooManyRuns(self._max_active_runs)
                    started = new
                else:
                    started = await uow.runs.start(
                        run_id, user_id, conversation_id, message, instance, idempotency
                    )
                await uow.commit()
        except IntegrityError as error:
            if conversation_id is None or ACTIVE_RUN_INDEX not in str(error.orig):
                raise
            # A run started on this conversation in the meantime (on another instance).
            raise RunActive(await self._active_run_id(conversation_id)) from None
        return ChatTurn(
            run_id,
            user_id,
            started.conversation_id,
            started.user_message_id,
            started.answer_message_id,
            message,
            tuple(history),
        )

    def start(self, turn: ChatTurn) -> LiveRun:
        """Answer the turn in the background. Subscribe to the returned run for its events."""
        answer = TurnAnswer(turn, self._agent, self._registry, self._database)
        live = self._registry.start_run(turn.run_id, answer)
        answer.start(live)
        return live

    def follow(self, run: Run, after_seq: int) -> AsyncIterator[list[LoggedEvent]]:
        """The run's events after `after_seq`, from whichever instance runs it. A user may
        follow `MAX_FOLLOWERS_PER_USER` streams at once on an instance (each tab, each
        reconnecting EventSource is one)."""
        if self._registry.following(run.user_id) >= MAX_FOLLOWERS_PER_USER:
            raise TooManyFollowers(MAX_FOLLOWERS_PER_USER)
        return self._registry.follow(run, after_seq)

    async def get_run(self, user_id: str, run_id: str) -> Run:
        async with self._database.unit_of_work() as uow:
            run = await uow.runs.get(user_id, run_id)
        if run is None:
            raise RunNotFound(run_id)
        return run

    async def active_run(self, user_id: str, conversation_id: int) -> Run | None:
        async with self._database.unit_of_work() as uow:
            if await uow.conversations.get(user_id, conversation_id) is None:
                raise ConversationNotFound(conversation_id)
            return await uow.runs.active_in_conversation(conversation_id)

    async def thread_active_run(self, user_id: str, thread: Thread) -> Run | None:
        """The run in progress in the conversation the user's thread names, if any."""
        async with self._database.unit_of_work() as uow:
            conversation_id = await uow.threads.conversation(user_id, thread)
            if conversation_id is None:
                return None
            return await uow.runs.active_in_conversation(conversation_id)

    async def thread_run(self, user_id: str, thread: Thread, run_id: str) -> Run:
        """A run of the conversation the user's thread names; `RunNotFound` for any other."""
        async with self._database.unit_of_work() as uow:
            conversation_id = await uow.threads.conversation(user_id, thread)
            run = None if conversation_id is None else await uow.runs.get(user_id, run_id)
        if run is None or run.conversation_id != conversation_id:
            raise RunNotFound(run_id)
        return run

    async def cancel(self, user_id: str, run_id: str) -> Run:
        """Stop a run and wait for its end; cancelling an ended run changes nothing."""
        run = await self.get_run(user_id, run_id)
        if run.status is RunStatus.ACTIVE:
            await self._registry.cancel(run)
            with anyio.move_on_after(CANCEL_WAIT_SECONDS):
                async for _ in self._registry.follow(run, after_seq=MAX_SEQ):
                    pass
            run = await self.get_run(user_id, run_id)
        return run

    async def _cancel_active(self, user_id: str, conversation_id: int) -> None:
        async with self._database.unit_of_work() as uow:
            conversation = await uow.conversations.get(user_id, conversation_id)
            active = (
                None
                if conversation is None
                else await uow.runs.active_in_conversation(conversation_id)
            )
        if active is not None:
            await self.cancel(user_id, active.id)

    async def _active_run_id(self, conversation_id: int) -> str:
        async with self._database.unit_of_work() as uow:
            active = await uow.runs.active_in_conversation(conversation_id)
        return "" if active is None else active.id

    async def conversations(
        self, user_id: str, *, limit: int, before: tuple[datetime, int] | None = None
    ) -> list[Conversation]:
        """The user's conversations, the most recently active first."""
        async with self._database.unit_of_work() as uow:
            return await uow.conversations.list(user_id, limit=limit, before=before)

    async def messages(
        self, user_id: str, conversation_id: int, *, limit: int, before_id: int | None = None
    ) -> tuple[Conversation, list[Message]]:
        """The conversation, and its last `limit` messages (before `before_id`), oldest first."""
        async with self._database.unit_of_work() as uow:
            conversation = await uow.conversations.get(user_id, conversation_id)
            if conversation is None:
                raise ConversationNotFound(conversation_id)
            messages = await uow.messages.list(conversation.id, limit=limit, before_id=before_id)
            return conversation, messages

    async def delete_conversation(self, user_id: str, conversation_id: int) -> None:
        async with self._database.unit_of_work() as uow:
            await uow.runs.lock_user(user_id)  # no run starts on it meanwhile
            active = await uow.runs.active_in_conversation(conversation_id)
            if active is not None and active.user_id == user_id:
                raise RunActive(active.id)
            if not await uow.conversations.delete(user_id, conversation_id):
                raise ConversationNotFound(conversation_id)
            await uow.commit()


async def _named(
    uow: UnitOfWork,
    user_id: str,
    message: str,
    conversation_id: int | None,
    thread: Thread | None,
    key: str | None,
) -> tuple[int | None, Run | None]:
    """The conversation a send names (its thread's, once it has one), and the run an earlier
    send with its key started; `IdempotencyKeyReused` if that send was another request
    (another message, or another conversation)."""
    if thread is not None:
        conversation_id = await uow.threads.conversation(user_id, thread)
    found = None if key is None else await uow.runs.by_idempotency_key(user_id, key)
    if key is None or found is None:
        return conversation_id, None
    run, digest = found
    if digest != Idempotency.of(key, message, conversation_id).digest:
        raise IdempotencyKeyReused
    return conversation_id, run
