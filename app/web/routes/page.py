"""The chat page at `/`: static files shipped in the package (app/static), no build step, no CDN.

`index.html` is served by a route rather than as a plain static file for two reasons:
- the page must know, before it draws anything, how the user signs in. In development a name
  field gets a token from `POST /dev/token`, a route that exists only when `APP_ENV` is
  `development` (everywhere else it is a 404, as for any unknown path). Otherwise the host
  application hands the page a token (README, "The chat page"), by `postMessage` from the
  origins the service already trusts for browser apps, `CORS_ORIGINS`. These facts, and the
  claim that names the user in a token (`JWT_USER_CLAIM`: the page builds its `/api/{user_id}`
  paths from it), go into the page as `<meta>` values, so nothing else (no config endpoint, no
  new setting) is needed;
- it gets a Content-Security-Policy: scripts, styles and connections from this origin only,
  and frames only by this origin and `CORS_ORIGINS`.

The template is served by that route alone: `/static/index.html` is a 404 (`_Assets`). Served
raw, it would carry no CSP and unfilled placeholders, and the page would read the user from a
claim literally named `{{user_claim}}`, judge every stored token unusable and forget the
remembered one: a link to it would sign the user out in every tab.

The token never goes into a URL here: `/dev/token` takes the name in a JSON body.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from app.settings import ConfigError, Settings
from app.web.auth import issue_token
from app.web.errors import error_response
from app.web.state import state_of

STATIC = Path(__file__).parents[1] / "static"
TEMPLATE = STATIC / "index.html"
_USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def page_routes(settings: Settings) -> list[BaseRoute]:
    routes: list[BaseRoute] = [
        Route("/", _index(settings), methods=["GET"]),
        Mount("/static", _Assets(directory=STATIC), name="static"),
    ]
    if settings.app_env == "development":
        routes.append(Route("/dev/token", dev_token, methods=["POST"]))
    return routes


class _Assets(StaticFiles):
    """The page's files, less its template (only `/` serves the page, filled in)."""

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        full_path, stat = super().lookup_path(path)
        if full_path and os.path.realpath(full_path) == os.path.realpath(TEMPLATE):
            return "", None
        return full_path, stat


def _index(settings: Settings) -> Callable[[Request], Awaitable[Response]]:
    development = settings.app_env == "development"
    origins = " ".join(settings.cors_origins)
    page = (
        TEMPLATE.read_text(encoding="utf-8")
        .replace("{{sign_in}}", "development" if development else "host")
        .replace("{{host_origins}}", html.escape(origins, quote=True))
        .replace("{{user_claim}}", html.escape(settings.jwt_user_claim, quote=True))
    )
    ancestors = " ".join(["'self'", *settings.cors_origins])
    headers = {
        "Content-Security-Policy": (
            "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
            f"form-action 'none'; frame-ancestors {ancestors}"
        ),
        "Cache-Control": "no-cache",
    }

    async def index(request: Request) -> Response:
        return HTMLResponse(page, headers=headers)

    return index


async def dev_token(request: Request) -> Response:
    """A token for the name typed into the page (development only: see `page_routes`)."""
    try:
        body = await request.json()
    except ValueError:
        body = None
    user_id = body.get("user_id") if isinstance(body, dict) else None
    if not isinstance(user_id, str) or not _USER_ID.match(user_id):
        return error_response(
            422,
            "invalid_request",
            "user_id: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    try:
        token = issue_token(state_of(request).settings, user_id)
    except ConfigError:
        return error_response(
            501, "not_available", "This service cannot issue tokens with its JWT settings."
        )
    return JSONResponse({"user_id": user_id, "token": token}, headers={"Cache-Control": "no-store"})
