"""Request bodies (input) and response bodies (output), kept apart."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from app.domain import Conversation, Message, Task

MAX_TITLE_CHARS = 200
MAX_DESCRIPTION_CHARS = 2000


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ChatRequest(_Input):
    message: str
    conversation_id: int | None = Field(default=None, ge=1)

    @field_validator("message")
    @classmethod
    def _message(cls, value: str, info: ValidationInfo) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        limit = (info.context or {}).get("max_message_chars")
        if limit is not None and len(value) > limit:
            raise ValueError(f"must be at most {limit} characters")
        return value


def _title(value: str | None) -> str | None:
    if value is None:
        return None
    value = " ".join(value.split())
    if not value:
        raise ValueError("must not be empty")
    return value


class TaskCreate(_Input):
    title: str = Field(max_length=MAX_TITLE_CHARS)
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_CHARS)

    _clean_title = field_validator("title")(_title)


class TaskUpdate(_Input):
    title: str | None = Field(default=None, max_length=MAX_TITLE_CHARS)
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_CHARS)
    completed: bool | None = None

    _clean_title = field_validator("title")(_title)

    @model_validator(mode="after")
    def _something(self) -> TaskUpdate:
        if self.title is None and self.description is None and self.completed is None:
            raise ValueError("give at least one of title, description, completed")
        return self


class TaskOut(BaseModel):
    id: int
    title: str
    description: str | None
    completed: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, task: Task) -> dict[str, Any]:
        return cls(
            id=task.id,
            title=task.title,
            description=task.description,
            completed=task.completed,
            created_at=task.created_at,
            updated_at=task.updated_at,
        ).model_dump(mode="json")


class ConversationOut(BaseModel):
    id: int
    title: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, conversation: Conversation) -> dict[str, Any]:
        return cls(
            id=conversation.id,
            title=conversation.title,
            created_at=conversation.created_at,
            updated_at=conversation.updated_at,
        ).model_dump(mode="json")


class MessageOut(BaseModel):
    id: int
    role: str
    content: str
    status: str
    tool_calls: list[dict[str, Any]]
    usage: dict[str, int] | None
    created_at: datetime

    @classmethod
    def of(cls, message: Message) -> dict[str, Any]:
        return cls(
            id=message.id,
            role=message.role.value,
            content=message.content,
            status=message.status.value,
            tool_calls=[call.as_dict() for call in message.tool_calls],
            usage=None if message.usage is None else message.usage.as_dict(),
            created_at=message.created_at,
        ).model_dump(mode="json")
