"""AG-UI's request, `RunAgentInput`, as `@ag-ui/client`'s `HttpAgent` POSTs it (camelCase:
`threadId`, `runId`, `messages`, `tools`, `context`, `state`, `forwardedProps`, and
`protocolVersion` from 1.0 clients). What the sources say, and why each choice: docs/ag-ui.md.

The client resends the whole conversation on every run; the service keeps its own, so of
`messages` only the last is read, and it must be the user's, with text. Its `id`, made by the
client, keys the send: a retried run of the same message joins the run the first one started
(`idempotency_key`), so the same message never starts a second turn.

Read and ignored, on purpose:
- `tools`: frontend tools. CopilotKit sends every action the page registered, on every run,
  whether or not the agent can use them; refusing them would shut out any page that registered
  one. The service's agent has a fixed set of tools, run on the server against the verified
  user's tasks; a frontend tool would need the run to stop and wait for the browser's answer,
  which a durable run (one message, one answer) does not do. `ignored_tool_names` says which
  were sent, for the log.
- `context`, `forwardedProps`: what the page tells the agent. Passing either to the model would
  let a page steer it; the service answers the user's message alone.
- `state`: the client's copy of the task list. The service owns the tasks and sends its own
  (`STATE_SNAPSHOT`) at the start of each run.
- `parentRunId` and `resume`: the service never pauses a run for an interrupt, so there is
  nothing to resume that way.
"""

from __future__ import annotations

import enum
import hashlib
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from app.protocols.client_input import (
    CLIENT_ID_RULE,
    CLIENT_ID_SCHEMA,
    client_id_is_valid,
    user_text_problem,
)

# AG-UI's threads among the threads (`app.domain.Thread`): stored, never to change.
PROTOCOL = "ag-ui"
_VERSION = re.compile(r"([0-9]{1,4})\.([0-9]{1,4})")
PROTOCOL_VERSION_PATTERN = f"^{_VERSION.pattern}$"


class AgUiVersion(enum.Enum):
    """The two lines of clients, which differ in what they accept (docs/ag-ui.md)."""

    LEGACY = "0.0"
    """No `protocolVersion` in the request: `@ag-ui/client` 0.0.x (0.0.59 is what CopilotKit's
    React packages pin)."""
    V1 = "1.0"
    """`protocolVersion` "1.0" or a later 1.x: `@ag-ui/client` 1.0.0 and on."""

    @classmethod
    def of(cls, protocol_version: str | None) -> AgUiVersion:
        """The line of a client that sent this `protocolVersion` (None: it sent none).
        ValueError for a value that is not `digits.digits`."""
        if protocol_version is None:
            return cls.LEGACY
        match = _VERSION.fullmatch(protocol_version)
        if match is None:
            raise ValueError(f"not a protocol version: {protocol_version!r}")
        return cls.V1 if int(match[1]) >= 1 else cls.LEGACY


class AgUiMessage(BaseModel):
    """A message of the history; only the last one's role, id and content are read."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: str
    role: str
    content: Any = None

    def text(self) -> str:
        """The text of a string content, or of its text parts, one per line. ValueError when
        there is a part of another kind: the service answers text, and an image or a file it
        would silently drop is refused instead."""
        if isinstance(self.content, str):
            return self.content
        if not isinstance(self.content, list):
            raise ValueError("content must be a string or a list of parts")
        texts = []
        for part in self.content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind != "text" or not isinstance(part.get("text"), str):
                raise ValueError(f"only text parts are supported, not {kind or 'this part'!r}")
            texts.append(part["text"])
        return "\n".join(texts)


class AgUiRunRequest(BaseModel):
    """`RunAgentInput`, with the service's own limits on what it reads (module docstring)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    threadId: str = Field(json_schema_extra=CLIENT_ID_SCHEMA)  # the protocol's names
    runId: str = Field(json_schema_extra=CLIENT_ID_SCHEMA)
    protocolVersion: str | None = Field(default=None, pattern=PROTOCOL_VERSION_PATTERN)
    messages: list[AgUiMessage] = Field(min_length=1)
    tools: list[dict[str, Any]] = Field(default_factory=list)
    context: list[dict[str, Any]] = Field(default_factory=list)
    state: Any = None
    forwardedProps: Any = None

    @field_validator("threadId", "runId")
    @classmethod
    def _client_id(cls, value: str) -> str:
        if not client_id_is_valid(value):
            raise ValueError(f"must be {CLIENT_ID_RULE}")
        return value

    @model_validator(mode="after")
    def _last_is_the_users_text(self, info: ValidationInfo) -> AgUiRunRequest:
        last = self.messages[-1]
        if last.role != "user":
            raise ValueError("messages: the last message must be the user's")
        if not client_id_is_valid(last.id):
            raise ValueError(f"messages: the last message's id must be {CLIENT_ID_RULE}")
        try:
            text = last.text()
        except ValueError as error:
            raise ValueError(f"messages: the last message's {error}") from None
        problem = user_text_problem(text, (info.context or {}).get("max_message_chars"))
        if problem is not None:
            raise ValueError(f"messages: the last message {problem}")
        return self

    @property
    def text(self) -> str:
        """The user's new message."""
        return self.messages[-1].text()

    @property
    def message_id(self) -> str:
        return self.messages[-1].id

    @property
    def version(self) -> AgUiVersion:
        return AgUiVersion.of(self.protocolVersion)

    @property
    def idempotency_key(self) -> str:
        """The send is keyed by the thread and the user message's own id (both the client's), so
        a retried run of the same message joins the first one's run. Hashed: the two ids may
        be longer together than a key may be."""
        digest = hashlib.sha256(f"{self.threadId}\n{self.message_id}".encode()).hexdigest()
        return f"ag-ui:{digest}"

    @property
    def ignored_tool_names(self) -> list[str]:
        return [str(tool.get("name")) for tool in self.tools]
