"""The chat service: one turn of a conversation, from the user's message to the stored answer.

A turn is three short transactions with the model in between, holding no connection:
`begin()` finds or creates the conversation, reads its history and stores the user's message;
the tools use their own; the end of the turn stores the assistant's message. The turn runs in
the background (see `TurnRunner`), so a client that goes away does not stop it.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from app.agent import AgentRun, TodoAgent
from app.db.uow import Database
from app.domain import (
    AgentFailed,
    ChatTurn,
    Conversation,
    ConversationNotFound,
    Message,
    MessageStatus,
    NewMessage,
    Role,
    ToolCall,
)
from app.events import Done, Error, Event, Start, Text, ToolCallEvent, ToolResultEvent
from app.tasks import UserTasks

logger = logging.getLogger(__name__)

TITLE_CHARS = 50
STORE_TIMEOUT_SECONDS = 10

ERROR_MESSAGES = {
    "agent_failed": "Sorry, something went wrong while answering. Please try again.",
    "max_turns_exceeded": "The assistant took too many steps on this request and was stopped.",
    "rate_limited": "The assistant is busy right now. Please try again in a moment.",
    "model_timeout": "The assistant took too long to answer. Please try again.",
    "model_unavailable": "The assistant can't be reached right now. Please try again shortly.",
    "model_error": "The assistant gave an answer that could not be used. Please try again.",
    "storage_failed": "The answer could not be saved. Please try again.",
    "interrupted": "The answer was interrupted. Please send your message again.",
}


def conversation_title(message: str) -> str:
    text = " ".join(message.split())
    return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1].rstrip() + "…"


class TurnRunner:
    """Runs turns in a task group of the app's lifespan, outside any request."""

    def __init__(self, task_group: TaskGroup) -> None:
        self._task_group = task_group
        self._active = 0
        self._idle = anyio.Event()
        self._idle.set()

    @property
    def active(self) -> int:
        return self._active

    def start(self, work: Callable[[], Awaitable[None]]) -> None:
        if self._active == 0:
            self._idle = anyio.Event()
        self._active += 1
        self._task_group.start_soon(self._run, work)

    async def wait_idle(self) -> None:
        await self._idle.wait()

    async def _run(self, work: Callable[[], Awaitable[None]]) -> None:
        try:
            await work()
        except Exception:
            # One broken turn must not take the task group, and every other turn, down with it.
            logger.exception("chat turn crashed")
        finally:
            self._active -= 1
            if self._active == 0:
                self._idle.set()


@dataclass
class Transcript:
    """What the agent has produced so far in a turn."""

    text: list[str] = field(default_factory=list)
    tool_calls: dict[str, ToolCall] = field(default_factory=dict)

    def record(self, event: Event) -> None:
        if isinstance(event, Text):
            self.text.append(event.content)
        elif isinstance(event, ToolCallEvent):
            self.tool_calls[event.call_id] = ToolCall(event.call_id, event.name, event.arguments)
        elif isinstance(event, ToolResultEvent):
            call = self.tool_calls.setdefault(
                event.call_id, ToolCall(event.call_id, event.name, None)
            )
            call.output = event.output

    @property
    def content(self) -> str:
        return "".join(self.text)

    def failed_status(self) -> MessageStatus:
        return MessageStatus.INCOMPLETE if self.text or self.tool_calls else MessageStatus.ERROR


class _Subscriber:
    """Hands events to the client's stream while it listens; a departed client is ignored."""

    def __init__(self, stream: MemoryObjectSendStream[Event]) -> None:
        self._stream = stream

    def send(self, event: Event) -> None:
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._stream.send_nowait(event)


class ChatService:
    def __init__(
        self, database: Database, agent: TodoAgent, runner: TurnRunner, *, history_messages: int
    ) -> None:
        self._database = database
        self._agent = agent
        self._runner = runner
        self._history_messages = history_messages

    async def begin(self, user_id: str, message: str, conversation_id: int | None) -> ChatTurn:
        """Store the user's message (before any model work) and read what the model needs."""
        async with self._database.unit_of_work() as uow:
            if conversation_id is None:
                conversation = await uow.conversations.add(user_id, conversation_title(message))
                history: list[Message] = []
            else:
                found = await uow.conversations.get(user_id, conversation_id)
                if found is None:
                    raise ConversationNotFound(conversation_id)
                conversation = found
                history = await uow.messages.recent(conversation.id, limit=self._history_messages)
                await uow.conversations.touch(conversation.id)
            stored = await uow.messages.add(NewMessage(conversation.id, Role.USER, message))
            await uow.commit()
        return ChatTurn(user_id, conversation.id, stored.id, message, tuple(history))

    async def conversations(self, user_id: str, *, limit: int) -> list[Conversation]:
        """The user's conversations, the most recently active first."""
        async with self._database.unit_of_work() as uow:
            return await uow.conversations.list(user_id, limit=limit)

    async def messages(
        self, user_id: str, conversation_id: int
    ) -> tuple[Conversation, list[Message]]:
        async with self._database.unit_of_work() as uow:
            conversation = await uow.conversations.get(user_id, conversation_id)
            if conversation is None:
                raise ConversationNotFound(conversation_id)
            return conversation, await uow.messages.list(conversation.id)

    async def delete_conversation(self, user_id: str, conversation_id: int) -> None:
        async with self._database.unit_of_work() as uow:
            if not await uow.conversations.delete(user_id, conversation_id):
                raise ConversationNotFound(conversation_id)
            await uow.commit()

    def start(self, turn: ChatTurn) -> MemoryObjectReceiveStream[Event]:
        """Run the turn in the background; the returned stream has its events, `Start` first,
        `Done` or `Error` last. Closing the stream early leaves the turn running."""
        send, receive = anyio.create_memory_object_stream[Event](math.inf)
        self._runner.start(lambda: self._run(turn, send))
        return receive

    async def _run(self, turn: ChatTurn, stream: MemoryObjectSendStream[Event]) -> None:
        with stream:
            subscriber = _Subscriber(stream)
            subscriber.send(Start(turn.conversation_id, turn.user_message_id))
            transcript = Transcript()
            tasks = UserTasks(self._database.unit_of_work, turn.user_id)
            run = self._agent.run(turn.history, turn.message, tasks)
            failure: AgentFailed | None = None
            try:
                async for event in run.events():
                    transcript.record(event)
                    subscriber.send(event)
            except AgentFailed as error:
                failure = error
                logger.error(
                    "chat turn failed (conversation %s): %s",
                    turn.conversation_id,
                    error.code,
                    exc_info=error.__cause__,
                )
            except BaseException:
                # Cancelled (the service is stopping) or a bug: keep what was said, then go on
                # unwinding.
                await self._store_answer(turn, transcript, run, transcript.failed_status())
                subscriber.send(_error("interrupted", retryable=True))
                raise
            status = MessageStatus.COMPLETE if failure is None else transcript.failed_status()
            message_id = await self._store_answer(turn, transcript, run, status)
            if message_id is None:
                subscriber.send(_error("storage_failed", retryable=True))
            elif failure is not None:
                subscriber.send(_error(failure.code, retryable=failure.retryable))
            else:
                usage = run.usage.as_dict()
                subscriber.send(Done(turn.conversation_id, message_id, usage))

    async def _store_answer(
        self, turn: ChatTurn, transcript: Transcript, run: AgentRun, status: MessageStatus
    ) -> int | None:
        """Store the assistant's message, shielded from cancellation; None if it failed."""
        message = NewMessage(
            conversation_id=turn.conversation_id,
            role=Role.ASSISTANT,
            content=transcript.content,
            status=status,
            tool_calls=tuple(transcript.tool_calls.values()),
            usage=run.usage,
        )
        try:
            with anyio.fail_after(STORE_TIMEOUT_SECONDS, shield=True):
                async with self._database.unit_of_work() as uow:
                    stored = await uow.messages.add(message)
                    await uow.conversations.touch(turn.conversation_id)
                    await uow.commit()
        except Exception:
            logger.exception("could not store the answer of conversation %s", turn.conversation_id)
            return None
        return stored.id


def _error(code: str, *, retryable: bool = False) -> Error:
    return Error(code, ERROR_MESSAGES[code], retryable)
