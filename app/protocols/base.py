"""What a wire protocol is to the one streaming transport (`app.web.streaming`).

A protocol module translates, and does nothing else: a client's request body into our send, and
a run's events into the bytes that client reads. No I/O, no web framework, no database: each is
unit-tested against recorded frames of its real client. The transport does the rest for every
protocol alike: the response's head, keep-alive pings, the bound on a client that stops reading,
the server's shutdown, the client's disconnect.

One `WireFormat` is made for each response, so it may keep state (the message it has open, the
step it is in). The transport writes `opening()` with the first batch, then one write per batch
of events (`frames`), and `closing()` in the same write as the batch that holds the run's final
event; a stream cut before that final event gets no closing, so the client can tell a finished
answer from a cut one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import ClassVar

from app.events import LoggedEvent

EVENT_STREAM = "text/event-stream"


class WireFormat(ABC):
    """One stream's events as one protocol's bytes."""

    media_type: ClassVar[str] = EVENT_STREAM
    headers: ClassVar[Mapping[str, str]] = {}
    """Response headers the protocol's clients look for, beyond the transport's own."""

    def __init__(self) -> None:
        self.ended = False
        """Whether the run's final event has been framed: the stream ends after that batch."""

    @property
    @abstractmethod
    def keep_alive(self) -> bytes:
        """What the transport sends while there is nothing to send: a comment its client skips."""

    def opening(self) -> bytes:
        """What the stream starts with, written with the first batch."""
        return b""

    @abstractmethod
    def frames(self, batch: Sequence[LoggedEvent]) -> bytes:
        """A batch of the run's events, in order, as this protocol's frames; sets `ended` once
        the run's final event is among them."""

    def closing(self) -> bytes:
        """What follows the run's final event (the AI SDK's `[DONE]`); never sent on a cut."""
        return b""
