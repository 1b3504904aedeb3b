"""What the lifespan builds once and every request uses, as one typed object.

Starlette keeps an application's shared objects on `app.state`, where each read is untyped and a
misspelt name fails only when a request reaches it. The lifespan (`app.main`) builds one
`AppState` and `share`s it; routes and tests reach it through `state_of`, typed.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import HTTPConnection

from app.chat import ChatService
from app.db.uow import Database
from app.runs.recovery import Recovery
from app.runs.registry import RunRegistry
from app.settings import Settings


@dataclass(frozen=True, slots=True)
class AppState:
    settings: Settings
    database: Database
    registry: RunRegistry
    recovery: Recovery
    chat: ChatService
    head_revision: str | None
    """The migration the code expects the database at (`GET /ready` compares)."""


def share(app: Starlette, state: AppState) -> None:
    """Make `state` what `state_of` answers for this app and its requests."""
    app.state.shared = state


def state_of(owner: HTTPConnection | Starlette) -> AppState:
    """The shared objects of a request's app, or of an app (once its lifespan has started)."""
    app = owner.app if isinstance(owner, HTTPConnection) else owner
    state: AppState = app.state.shared
    return state
