"""Our own streams: each event of a run as one Server-Sent Event whose `data` is the event's JSON.

Two kinds of client read our streams, and no single layout serves both, so each request gets
the framing it asks for (`framing_for`, from its `Accept` header):

**Standard**, for clients that send `Accept: text/event-stream` (EventSource, the npm
`eventsource`, `@microsoft/fetch-event-source`, httpx-sse): one block per event, LF endings,

    data: <JSON on one line, with "seq">
    id: <run_id>:<seq>
    <empty line>

Deliberate divergences from the usual `id:`-then-`data:` layout, do not "fix" them:
1. `data:` comes before `id:`. fetch-event-source records an id the moment it parses the line,
   before the event is dispatched; with `id:` first, a connection cut inside an event would make
   its retry resume *after* an event it never delivered. Data first leaves one byte (between the
   `id:` line and the empty line) where that can happen, instead of the whole event.
2. The stream opens with a bare `id: <run_id>:<after_seq>` line. fetch-event-source retries a
   failed POST with the last id it saw, and a retry with none would start a second turn; with
   the run's id in the first bytes, a connection cut inside the first event resumes this run.
   A WHATWG parser overwrites it with the first event's own id, so nothing else changes.
3. Keep-alive pings are a lone comment line, `: ping`, with no empty line after it:
   fetch-event-source dispatches *every* empty line as a message, and an empty message breaks
   the `JSON.parse(ev.data)` its README shows. A comment needs no empty line to be skipped.

**Seed**, for everything else (browsers' `fetch` sends `Accept: */*`; the seed's `useChat` and
`StreamingMessage` split the body on `\\n\\n`, keep blocks that begin with `data: ` and
`JSON.parse` them): every event is two blocks, written together,

    id: <run_id>:<seq>
    <empty line>
    data: <JSON on one line, with "seq">
    <empty line>

so those readers see one JSON object per event, and a spec-compliant reader that did not ask
for the standard framing still gets each event's id. Pings are whole comment blocks.

Neither framing has a closing: how a finished stream is told apart from a cut one is the
routes' business (the run's final event was in it; a 204 to a reconnecting EventSource).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

from app.events import MAX_SEQ, LoggedEvent
from app.protocols.base import EVENT_STREAM, WireFormat


class NativeFraming(WireFormat):
    """One stream of a run's events, after `after_seq`, in one of our two framings."""

    def __init__(self, run_id: str, after_seq: int) -> None:
        super().__init__()
        self.run_id = run_id
        self.after_seq = after_seq

    def frames(self, batch: Sequence[LoggedEvent]) -> bytes:
        # A run's final event is its last: it can only end the batch it is in.
        self.ended = self.ended or (bool(batch) and batch[-1].terminal)
        return b"".join(self.frame(event) for event in batch)

    @abstractmethod
    def frame(self, event: LoggedEvent) -> bytes:
        """One event, as this framing writes it."""


class StandardFraming(NativeFraming):
    @property
    def keep_alive(self) -> bytes:
        """One line (divergence 3)."""
        return b": ping\n"

    def opening(self) -> bytes:
        """The run's id (divergence 2)."""
        return f"id: {self.run_id}:{self.after_seq}\n".encode()

    def frame(self, event: LoggedEvent) -> bytes:
        return f"data: {event.data}\nid: {self.run_id}:{event.seq}\n\n".encode()


class SeedFraming(NativeFraming):
    @property
    def keep_alive(self) -> bytes:
        """A whole block: seed readers skip a block unless it begins with `data: `."""
        return b": ping\n\n"

    def frame(self, event: LoggedEvent) -> bytes:
        return f"id: {self.run_id}:{event.seq}\n\ndata: {event.data}\n\n".encode()


def framing_for(accept: str | None) -> type[NativeFraming]:
    """Standard framing for a client whose `Accept` names `text/event-stream` (with q > 0)."""
    for media_range in (accept or "").split(","):
        media_type, *parameters = (part.strip() for part in media_range.split(";"))
        if media_type.lower() != EVENT_STREAM:
            continue
        quality = next((p[2:] for p in parameters if p.lower().startswith("q=")), "1")
        if _acceptable(quality):
            return StandardFraming
    return SeedFraming


def _acceptable(quality: str) -> bool:
    """`q=0` refuses a media type; any other weight, or one we cannot read, accepts it."""
    try:
        return float(quality) > 0
    except ValueError:
        return True


def parse_event_id(raw: str) -> tuple[str, int]:
    """The run and sequence number in an event id as the framings write it (`<run_id>:<seq>`),
    or in a bare `<seq>` (then the run is ""). ValueError for anything else: `seq` is ASCII
    digits up to `MAX_SEQ` (`str.isdigit()` alone takes other scripts' digits, which `int()`
    refuses or reads as numbers no client was sent)."""
    run_id, _, seq = raw.rpartition(":")
    if not (seq.isascii() and seq.isdigit() and len(seq) <= 10 and int(seq) <= MAX_SEQ):
        raise ValueError(f"not an event id: {raw!r}")
    return run_id, int(seq)
