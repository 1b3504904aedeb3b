"""Request bodies (input) and response bodies (output), kept apart."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from app.domain import (
    MAX_DESCRIPTION_CHARS,
    MAX_TITLE_CHARS,
    MessageStatus,
    Role,
    RunStatus,
    has_unstorable,
    task_title,
)
from app.settings import Settings

# The largest id a client may name: PostgreSQL's bigint.
MAX_ID = 2**63 - 1
# What the validators below check, said in JSON Schema for /openapi.json: some text that is not
# only spaces, without U+0000 (PostgreSQL cannot store it).
_TEXT = "^[^\\x00]*[^\\s\\x00][^\\x00]*$"
_STORABLE = "^[^\\x00]*$"


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @field_validator("*")
    @classmethod
    def _storable(cls, value: object) -> object:
        """Text PostgreSQL cannot store is refused, not cleaned: the client hears why."""
        if isinstance(value, str) and has_unstorable(value):
            raise ValueError("must not contain U+0000 or unpaired surrogates")
        return value


class ChatRequest(_Input):
    # maxLength is MAX_MESSAGE_CHARS, a setting: /openapi.json says it (`bound_schema`).
    message: str = Field(json_schema_extra={"minLength": 1, "pattern": _TEXT})
    conversation_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    cancel_active: bool = False

    @field_validator("message")
    @classmethod
    def _message(cls, value: str, info: ValidationInfo) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        limit = (info.context or {}).get("max_message_chars")
        if limit is not None and len(value) > limit:
            raise ValueError(f"must be at most {limit} characters")
        return value

    @classmethod
    def bound_schema(cls, schema: dict[str, Any], settings: Settings) -> None:
        """The schema /openapi.json gives, with the bound the settings set."""
        schema["properties"]["message"]["maxLength"] = settings.max_message_chars


def _title(value: str | None) -> str | None:
    if value is None:
        return None
    title = task_title(value)
    if title is None:
        raise ValueError(f"must have 1 to {MAX_TITLE_CHARS} characters, not counting spaces")
    return title


class TaskCreate(_Input):
    title: str = Field(json_schema_extra={"maxLength": MAX_TITLE_CHARS, "pattern": _TEXT})
    description: str | None = Field(
        default=None, max_length=MAX_DESCRIPTION_CHARS, json_schema_extra={"pattern": _STORABLE}
    )

    _clean_title = field_validator("title")(_title)


class TaskUpdate(_Input):
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": [name], "properties": {name: {"type": kind}}}
                for name, kind in (
                    ("title", "string"),
                    ("description", "string"),
                    ("completed", "boolean"),
                )
            ]
        }
    )
    title: str | None = Field(
        default=None, json_schema_extra={"maxLength": MAX_TITLE_CHARS, "pattern": _TEXT}
    )
    description: str | None = Field(
        default=None, max_length=MAX_DESCRIPTION_CHARS, json_schema_extra={"pattern": _STORABLE}
    )
    completed: bool | None = None

    _clean_title = field_validator("title")(_title)

    @model_validator(mode="after")
    def _changes_something(self) -> TaskUpdate:
        if self.title is None and self.description is None and self.completed is None:
            raise ValueError("give at least one of title, description, completed")
        return self


class _Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    @classmethod
    def of(cls, value: object) -> dict[str, Any]:
        """The JSON body for a domain object."""
        return cls.model_validate(value).model_dump(mode="json")


class TaskOut(_Output):
    id: int
    title: str
    description: str | None
    completed: bool
    created_at: datetime
    updated_at: datetime


class ConversationOut(_Output):
    id: int
    title: str
    created_at: datetime
    updated_at: datetime


class ToolCallOut(_Output):
    call_id: str
    name: str
    arguments: Any
    output: Any


class UsageOut(_Output):
    requests: int
    input_tokens: int
    output_tokens: int
    total_tokens: int


class MessageOut(_Output):
    id: int
    role: Role
    content: str
    status: MessageStatus
    tool_calls: list[ToolCallOut]
    usage: UsageOut | None
    created_at: datetime


class RunOut(_Output):
    id: str
    conversation_id: int
    status: RunStatus
    user_message_id: int
    assistant_message_id: int | None
    last_seq: int
    created_at: datetime
    finished_at: datetime | None


# Response bodies that wrap the ones above: what GET /openapi.json documents (app/web/openapi).


class ConversationPage(BaseModel):
    conversations: list[ConversationOut]
    next_before: str | None = Field(description="The `before` of the next page; null on the last.")


class MessagePage(BaseModel):
    conversation: ConversationOut
    messages: list[MessageOut]
    next_before: int | None = Field(description="The `before` of the earlier messages, if any.")


class TaskPage(BaseModel):
    tasks: list[TaskOut]
    next_after: int | None = Field(description="The `after` of the next page; null on the last.")


class ChatResponse(BaseModel):
    conversation_id: int
    message_id: int
    run_id: str
    response: str
    tool_calls: list[ToolCallOut]
    usage: dict[str, int]


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str = Field(description="Stable; the words of `message` may change.")
    message: str = Field(description="Safe to show to the user.")


class ErrorBody(BaseModel):
    error: ErrorDetail
