"""uvicorn's HTTP/1.1 protocol (httptools), with what it lacks against requests that never finish.

uvicorn times out nothing but an idle keep-alive connection: a connection that sends half a
request line, headers a byte at a time, or a body shorter than its `Content-Length` is held open
for as long as the client likes, each one a file descriptor and a buffer. Its other guards do not
reach these: `h11_max_incomplete_event_size` caps a head under h11 only (httptools buffers a head
of any size), and `limit_concurrency` answers 503 only once a head has arrived. So this subclass:

- gives a request's head (its line and headers) REQUEST_HEAD_TIMEOUT_SECONDS from the moment the
  connection opens, or from its first byte on a reused connection; past that a client that sent
  something is answered 408, one that sent nothing is closed without a word (a browser's
  preconnected socket, which a 408 would only confuse);
- caps the head at MAX_HEADER_BYTES: 431;
- gives the body REQUEST_BODY_TIMEOUT_SECONDS from the end of the head: 408 (the app, which
  was waiting for the body, is told the client left);
- answers 503 `overloaded` to a request on a connection past MAX_CONNECTIONS open in this
  process (uvicorn's own `limit_concurrency` check, in the JSON envelope).

Each refusal is the JSON error envelope with `Connection: close`, then a lingering close: the
answer is sent and the sending side shut, and what the client still sends is read and dropped
for a moment (LINGER_SECONDS), because closing a socket with unread data resets the connection,
and a reset can destroy the answer before the client reads it.

`python -m app serve` passes `protocol_for(settings)`; the Procfile names `HttpProtocol`, which
reads the settings from the environment, as the app does. uvicorn's own `--limit-concurrency` is
set aside for MAX_CONNECTIONS. The subclass leans on its parent's internals (the parser's
callbacks, `cycle`, `flow`), which uvicorn does not promise to keep: the lock pins the version,
and tests/e2e/test_unfinished_requests.py is what notices an upgrade that moved them.
"""

from __future__ import annotations

import asyncio
import enum
import functools
from asyncio import TimerHandle
from collections.abc import Callable
from typing import Any, ClassVar

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from app.metrics import REFUSALS
from app.settings import Settings
from app.web.errors import HEADERS_TOO_LARGE, OVERLOADED, REQUEST_TIMEOUT, error_body

# Long enough for what the client had in flight when it was answered to arrive and be dropped.
LINGER_SECONDS = 2.0


class _Phase(enum.Enum):
    IDLE = enum.auto()  # between requests (or none yet)
    HEAD = enum.auto()  # the request line and headers are arriving
    BODY = enum.auto()  # the head is in, the body is not


@functools.cache
def _settings_from_env() -> Settings:
    return Settings.from_env()


def protocol_for(settings: Settings) -> type[HttpProtocol]:
    """The protocol class for uvicorn's `http`, with these settings' limits."""
    return type("HttpProtocol", (HttpProtocol,), {"settings": settings})


class HttpProtocol(HttpToolsProtocol):
    settings: ClassVar[Settings | None] = None  # None: read from the environment

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        settings = self.settings or _settings_from_env()
        self._head_seconds = settings.request_head_timeout_seconds
        self._body_seconds = settings.request_body_timeout_seconds
        self._max_head_bytes = settings.max_header_bytes
        self._max_connections = settings.max_connections
        self.limit_concurrency = None  # checked here instead, to answer in the envelope
        self._phase = _Phase.IDLE
        self._head_bytes = 0
        self._deadline: TimerHandle | None = None
        self._lingering = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self._head_seconds, self._head_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return
        room = self._max_head_bytes - self._head_bytes
        if self._before_body() and len(data) > room:
            # Feed what the head may still take; if the head is not over by then, it is too big.
            self._feed(data[:room])
            if self._lingering or self.transport.is_closing():
                return
            if self._before_body():
                if self._in_progress():
                    # Behind a request the app still answers: a 431 now would come first.
                    self.transport.close()
                else:
                    self._refuse(HEADERS_TOO_LARGE)
                return
            self.data_received(data[room:])
            return
        self._feed(data)
        if not self._before_body() and self._deadline is None and not self._lingering:
            if self.transport.is_closing():
                return
            self._arm(self._body_seconds, self._body_expired)

    def _before_body(self) -> bool:
        return self._phase is not _Phase.BODY

    def _feed(self, data: bytes) -> None:
        if self._before_body():
            self._head_bytes += len(data)
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = _Phase.HEAD
        if self._deadline is None:
            self._arm(self._head_seconds, self._head_expired)

    def on_headers_complete(self) -> None:
        self._disarm()
        self._phase = _Phase.BODY
        self._head_bytes = 0
        if len(self.connections) <= self._max_connections:
            super().on_headers_complete()
            return
        app, self.app = self.app, _overloaded
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def on_message_complete(self) -> None:
        self._disarm()
        self._phase = _Phase.IDLE
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        super().handle_websocket_upgrade()

    def _head_expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._in_progress():
            # A head pipelined behind a request still with the app (answering, or yet to): it
            # waits its turn, and a 408 now would come before or inside that answer.
            self._arm(self._head_seconds, self._head_expired)
        elif self._head_bytes == 0 and self._phase is _Phase.IDLE:
            self.transport.close()  # nothing was asked: nothing to answer
        else:
            self._refuse(REQUEST_TIMEOUT)

    def _body_expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or cycle.response_started:
            self.transport.close()  # answered already (without reading the body): just end
            return
        if cycle.waiting_for_100_continue or self.flow.read_paused:
            # The wait is this side's: the client waits for `100 Continue` until the app asks
            # for the body, and a body past uvicorn's buffer is not read until the app takes
            # some. The deadline starts again.
            self._arm(self._body_seconds, self._body_expired)
            return
        self._refuse(REQUEST_TIMEOUT)
        # The app waiting for the body is told the client left; what it answers goes nowhere.
        cycle.disconnected = True
        cycle.message_event.set()

    def _in_progress(self) -> bool:
        """Whether the request before the head being read is still with the app: its
        response not complete (begun or not)."""
        cycle = self.cycle
        return cycle is not None and not cycle.response_complete

    def _answering(self) -> bool:
        """Whether a response has begun on this connection and not ended."""
        cycle = self.cycle
        return cycle is not None and cycle.response_started and not cycle.response_complete

    def _refuse(self, refusal: tuple[int, str, str]) -> None:
        status, code, message = refusal
        REFUSALS.labels(str(status), code).inc()
        if self._answering():
            self.transport.close()  # an answer now would land inside the one on its way
            return
        body = error_body(code, message)
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self._linger()

    def _linger(self) -> None:
        self._lingering = True
        self._disarm()
        if self.flow is not None:
            self.flow.resume_reading()
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        # The client reads the answer, then the end of the stream; its own close ends ours
        # (`eof_received`), or LINGER_SECONDS do.
        self.transport.write_eof()
        self._deadline = self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _arm(self, seconds: float, expired: Callable[[], None]) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


async def _overloaded(scope: Any, receive: Any, send: Any) -> None:
    status, code, message = OVERLOADED
    REFUSALS.labels(str(status), code).inc()
    body = error_body(code, message)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"retry-after", b"5"),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
