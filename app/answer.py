"""A turn's answer: the run's work, from the agent's first event to the stored answer.

`ChatService.send` begins a turn (`app.chat`) and hands its run this work (`TurnAnswer`),
which runs in the background, outside any request: the agent's events as they come, each
handed to the run's followers and the event log, then the run's end, which stores the
assistant's message with the run's last events in one statement (`RunRegistry.finish`).
"""

from __future__ import annotations

import logging

from app.agent import AgentRun, TodoAgent
from app.db.gate import Priority
from app.db.uow import Database
from app.domain import (
    AgentFailed,
    ChatTurn,
    MessageStatus,
    NewMessage,
    Role,
    RunStatus,
)
from app.events import (
    Done,
    Event,
    Start,
    Transcript,
    encode,
    error_event,
    interrupted,
)
from app.runs.ending import RunEnd
from app.runs.live import CancelReason, LiveRun
from app.runs.registry import RunRegistry
from app.tasks import UserTasks

logger = logging.getLogger(__name__)


class TurnAnswer:
    """The work of one turn's run (`registry.start_run`'s `answer`)."""

    __slots__ = ("_agent", "_database", "_registry", "_turn")

    def __init__(
        self, turn: ChatTurn, agent: TodoAgent, registry: RunRegistry, database: Database
    ) -> None:
        self._turn = turn
        self._agent = agent
        self._registry = registry
        self._database = database

    def start(self, live: LiveRun) -> None:
        """The run's first event, `start`, emitted by whoever started the run as soon as it
        has (the request that sent the turn), not by the run's own task once the loop runs
        it: the stream's first write waits for no other task."""
        turn = self._turn
        start = Start(turn.conversation_id, turn.user_message_id, turn.run_id)
        self._registry.emit(live, encode(start, live.next_seq))

    async def __call__(self, live: LiveRun) -> None:
        """The agent's events as they come (after `start`), then the run's end."""
        turn = self._turn

        def emit(event: Event) -> None:
            self._registry.emit(live, encode(event, live.next_seq))

        transcript = Transcript()
        agent_run: AgentRun | None = None
        failure: AgentFailed | None = None
        try:
            tasks = UserTasks(self._database, turn.user_id, Priority.RUN)
            agent_run = self._agent.answer(turn.history, turn.message, tasks)
            live.on_cancel = agent_run.cancel
            if live.cancel_reason is not None:
                agent_run.cancel()  # cancelled before the agent had started
            async for event in agent_run.events():
                transcript.record(event)
                emit(event)
        except AgentFailed as error:
            failure = error
            logger.error(
                "run %s failed (conversation %s): %s",
                turn.run_id,
                turn.conversation_id,
                error.code,
                exc_info=error.__cause__,
            )
        except BaseException as error:
            # Cancelled (the service is stopping) or a bug: keep what was said, then go on
            # unwinding (a bug is logged by the registry).
            status = transcript.failed_status()
            stopped = interrupted(retryable=transcript.safe_to_retry)
            await self._finish(live, transcript, agent_run, status, stopped)
            raise error
        status, final_event = _ending(turn, live, transcript, agent_run, failure)
        await self._finish(live, transcript, agent_run, status, final_event)

    async def _finish(
        self,
        live: LiveRun,
        transcript: Transcript,
        agent_run: AgentRun | None,
        status: MessageStatus,
        final_event: Event,
    ) -> None:
        """Store the answer with the run's final event (see `RunRegistry.finish`)."""
        turn = self._turn
        answer = NewMessage(
            conversation_id=turn.conversation_id,
            role=Role.ASSISTANT,
            content=transcript.content,
            status=status,
            tool_calls=tuple(transcript.tool_calls.values()),
            usage=None if agent_run is None else agent_run.usage,
        )
        final = encode(final_event, live.next_seq)
        end = RunEnd(turn.run_id, RunStatus(status.value), answer, turn.answer_message_id, final)
        await self._registry.finish(live, end)


def _ending(
    turn: ChatTurn,
    live: LiveRun,
    transcript: Transcript,
    agent_run: AgentRun | None,
    failure: AgentFailed | None,
) -> tuple[MessageStatus, Event]:
    """How a run that was not interrupted ends: the answer's status, and its final event."""
    usage = {} if agent_run is None else agent_run.usage.as_dict()
    answer = turn.answer_message_id
    if live.cancel_reason is CancelReason.USER:
        return MessageStatus.CANCELLED, Done(turn.conversation_id, answer, usage, "cancelled")
    retryable = transcript.safe_to_retry
    if live.cancel_reason is CancelReason.SHUTDOWN:
        return transcript.failed_status(), error_event("server_restarting", retryable=retryable)
    if live.cancel_reason is CancelReason.CUT_OFF:
        return transcript.failed_status(), interrupted(retryable=retryable)
    if failure is not None:
        failed = error_event(failure.code, retryable=failure.retryable and retryable)
        return transcript.failed_status(), failed
    return MessageStatus.COMPLETE, Done(turn.conversation_id, answer, usage)
