"""The endpoints, one module per resource, each declaring its OpenAPI operations beside them
(`app.web.openapi.operation.ApiRoute`); `app.main` mounts these tables."""

from __future__ import annotations

from starlette.routing import BaseRoute

from app.web.routes import ag_ui, ai_sdk, conversations, ops, runs, tasks

user_routes: list[BaseRoute] = [
    *runs.routes,
    *conversations.routes,
    *tasks.routes,
    *ai_sdk.routes,
    *ag_ui.routes,
]
"""Under /api/{user_id}: each acts for the token's user, and no other."""

service_routes: list[BaseRoute] = [*ops.routes]
"""The service's own: health, readiness, metrics."""
