"""/openapi.json documents every route and validates; its examples fit their schemas; /docs
loads everything from the service itself; X-Request-ID reaches every log line of a request and
of the run it starts."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from openapi_spec_validator import validate
from starlette.routing import BaseRoute, Mount, Route

from app.logs import make_handler
from app.main import create_app
from app.settings import Settings
from tests.conftest import with_settings
from tests.support import LiveServer, serve


async def test_every_route_is_documented_and_the_document_validates(server: LiveServer) -> None:
    document = (await server.client.get("/openapi.json")).json()
    validate(document)
    assert document["openapi"] == "3.1.0"
    documented = {
        (path, method.upper()) for path, item in document["paths"].items() for method in item
    }
    routes = set(_routes(server.app.routes))
    assert routes <= documented and len(routes) >= 20
    stream = document["paths"]["/api/{user_id}/chat/stream"]["post"]
    assert stream["security"] == [{"bearer": []}]
    codes = stream["responses"]["409"]["content"]["application/json"]["schema"]["allOf"][1]
    assert codes["properties"]["error"]["properties"]["code"]["enum"] == ["run_active"]
    assert {"Idempotency-Key", "Last-Event-ID"} <= {p["name"] for p in stream["parameters"]}
    limit = next(
        p
        for p in document["paths"]["/api/{user_id}/tasks"]["get"]["parameters"]
        if p["name"] == "limit"
    )
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 1000)
    ag_ui = document["paths"]["/api/{user_id}/ag-ui"]["post"]
    assert ag_ui["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AgUiRunRequest"
    }
    assert {"200", "409", "413", "422", "429"} <= set(ag_ui["responses"])
    resume = document["paths"]["/api/{user_id}/ag-ui/{thread_id}/stream"]["get"]
    assert "text/event-stream" in resume["responses"]["200"]["content"]
    assert {"204", "404", "422"} <= set(resume["responses"])
    assert {"Last-Event-ID", "runId", "protocolVersion"} <= {
        p["name"] for p in resume["parameters"]
    }
    event = document["components"]["schemas"]["Event"]
    assert event["discriminator"]["propertyName"] == "type"
    assert set(event["discriminator"]["mapping"]) == {
        "start",
        "thinking",
        "tool_call",
        "tool_result",
        "text",
        "done",
        "error",
    }


def _routes(table: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every path and method Starlette serves, read here rather than with
    `app.web.route_table.walk`, which the document is built with."""
    for route in table:
        if isinstance(route, Route):
            path = re.sub(r"{(\w+)(:\w+)?}", r"{\1}", prefix + route.path)
            yield from ((path, method) for method in route.methods or () if method != "HEAD")
        elif isinstance(route, Mount):
            if route.routes:
                yield from _routes(route.routes, prefix + route.path)
            else:
                yield prefix + route.path + "/{path}", "GET"


def _examples(node: Any) -> Iterator[tuple[Any, Any]]:
    if isinstance(node, dict):
        if "example" in node and "schema" in node:
            yield node["example"], node["schema"]
        for child in node.values():
            yield from _examples(child)
    elif isinstance(node, list):
        for child in node:
            yield from _examples(child)


async def test_each_example_fits_its_schema(server: LiveServer) -> None:
    document = (await server.client.get("/openapi.json")).json()
    found = 0
    for example, schema in _examples(document["paths"]):
        rooted = {**schema, "components": document["components"]}
        if isinstance(example, str) and "data: " in example:  # a stream: each line's data
            data_schema = schema["properties"]["data"]
            for line in example.splitlines():
                if not line.startswith("data: "):
                    continue
                if "contentSchema" in data_schema:  # JSON: our events
                    content = {**data_schema["contentSchema"], "components": rooted["components"]}
                    jsonschema.validate(json.loads(line[6:]), content)
                else:
                    jsonschema.validate(line[6:], data_schema)
                found += 1
        else:
            jsonschema.validate(example, rooted)
            found += 1
    assert found >= 10


async def test_docs_load_from_the_service_itself(server: LiveServer) -> None:
    page = await server.client.get("/docs")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(source.startswith("/") and "//" not in source for source in sources)
    assert "http" not in page.text.lower().replace('lang="en"', "")
    for source in sources:
        assert (await server.client.get(source)).status_code == 200, source
    init = (await server.client.get("/docs/init.js")).text
    assert '"/openapi.json"' in init and "http" not in init
    bundle = await server.client.get("/docs/assets/swagger-ui-bundle.js")
    assert re.search(r'"5\.\d+\.\d+"', bundle.text)  # Swagger UI 5: renders OpenAPI 3.1


@pytest.mark.parametrize(("api_docs", "status"), [(False, 404), (True, 200)])
async def test_docs_are_a_setting(settings: Settings, api_docs: bool, status: int) -> None:
    production = with_settings(settings, app_env="production", api_docs=api_docs)
    async with serve(create_app(production), production) as live:
        assert (await live.client.get("/docs")).status_code == status
        assert (await live.client.get("/openapi.json")).status_code == 200


async def test_the_request_id_is_in_every_line_of_the_request_and_its_run(
    server: LiveServer,
) -> None:
    lines = io.StringIO()
    handler = make_handler(lines, "json")
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        user = server.user()
        tasks = user.url("/tasks")
        given = await user.client.get(
            tasks, headers={**user.headers, "X-Request-ID": "req-given-1"}
        )
        assert given.headers["x-request-id"] == "req-given-1"
        made = await user.get("/tasks")
        assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
        bad = await user.client.get(tasks, headers={**user.headers, "X-Request-ID": "x" * 201})
        assert re.fullmatch(r"[0-9a-f]{32}", bad.headers["x-request-id"])
        logging.getLogger("app.runs.test").info("outside any request")
        async with user.client.stream(
            "POST",
            user.url("/chat/stream"),
            json={"message": "add buy milk"},
            headers={**user.headers, "X-Request-ID": "req-run-2"},
        ) as answer:
            async for _ in answer.aiter_lines():
                pass
        await server.registry.wait_idle()
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    records = [json.loads(line) for line in lines.getvalue().splitlines()]
    by_id = {record["request_id"] for record in records}
    assert {"req-given-1", "req-run-2"} <= by_id
    assert any(r["request_id"] == "-" and r["message"] == "outside any request" for r in records)
    ended = [r for r in records if r["logger"] == "app.runs.registry"]
    assert [r["request_id"] for r in ended] == ["req-run-2"]  # logged by the run's own task
