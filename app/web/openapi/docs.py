"""GET /openapi.json (`document`), and GET /docs to read it.

**/docs** is Swagger UI 5 (the first major version that renders OpenAPI 3.1), its files from the
swagger-ui-py package, served by the service under /docs/assets: no CDN, nothing from another
origin. It is on outside production; in production only with `API_DOCS=on`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from app.settings import Settings
from app.web.openapi.document import document


def _swagger_ui_files() -> Path:
    """swagger-ui-py's copy of Swagger UI's files, found without importing the package (whose
    own code, for other frameworks, needs jinja2)."""
    spec = importlib.util.find_spec("swagger_ui")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "static"


_DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>todo-chat API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"""
_DOCS_INIT = """window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
});
"""
_DOCS_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "Cache-Control": "no-cache",
}


def docs_routes(settings: Settings, table: Callable[[], Sequence[BaseRoute]]) -> list[BaseRoute]:
    """/openapi.json always; /docs and its files when `settings.api_docs`."""
    cached: list[dict[str, Any]] = []

    async def openapi_json(request: Request) -> Response:
        if not cached:
            cached.append(document(table(), settings))
        return JSONResponse(cached[0])

    async def docs(request: Request) -> Response:
        return HTMLResponse(_DOCS_PAGE, headers=_DOCS_HEADERS)

    async def docs_init(request: Request) -> Response:
        return Response(_DOCS_INIT, media_type="text/javascript", headers=_DOCS_HEADERS)

    found: list[BaseRoute] = [Route("/openapi.json", openapi_json, methods=["GET"])]
    if settings.api_docs:
        found += [
            Route("/docs", docs, methods=["GET"]),
            Route("/docs/init.js", docs_init, methods=["GET"]),
            Mount("/docs/assets", StaticFiles(directory=_swagger_ui_files())),
        ]
    return found
