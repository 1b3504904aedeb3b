"""The OpenAPI document is read off the route table: a route declares its operation
(`ApiRoute`), and nothing central names it. These build a document from a table of their own;
tests/e2e/test_openapi.py and test_contract.py hold the service's own to its answers."""

from __future__ import annotations

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from app.domain import RunNotFound
from app.main import create_app
from app.settings import Settings
from app.web.openapi.document import UNDESCRIBED, document, event_schemas
from app.web.openapi.operation import ID_SCHEMA, ApiRoute, Operation, limit_param
from app.web.route_table import walk
from app.web.schemas import ChatRequest

REF = "#/components/schemas/"


class Thing(BaseModel):
    name: str


async def get_thing(request: Request) -> Response:
    return Response()


async def plain(request: Request) -> Response:
    """A page of its own.

    More than its summary."""
    return Response()


THING = Operation(
    "One thing",
    answer=Thing,
    params=(limit_param(5, 10),),
    path_params={"thing_id": ID_SCHEMA},
    raises=(RunNotFound,),
)
TABLE = [
    Route("/plain", plain, methods=["GET"]),
    Mount(
        "/api/{user_id}",
        routes=[
            ApiRoute("/things/{thing_id}", get_thing, methods=["GET"], operation=THING),
            ApiRoute(
                "/things", get_thing, methods=["POST"], operation=Operation("Add", body=ChatRequest)
            ),
        ],
    ),
]


def test_a_routes_operation_is_what_the_document_says_of_it() -> None:
    built = document(TABLE, Settings())
    operation = built["paths"]["/api/{user_id}/things/{thing_id}"]["get"]
    assert (operation["summary"], operation["tags"]) == ("One thing", ["api"])
    assert operation["security"] == [{"bearer": []}]
    assert [(p["name"], p["in"]) for p in operation["parameters"]] == [
        ("user_id", "path"),
        ("thing_id", "path"),
        ("limit", "query"),
    ]
    assert operation["parameters"][1]["schema"] == ID_SCHEMA
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": REF + "Thing"}
    assert "run_not_found" in operation["responses"]["404"]["description"]
    assert "invalid_request" in operation["responses"]["422"]["description"]  # the limit's


def test_the_schemas_are_those_the_operations_name_and_the_error_body() -> None:
    schemas = document(TABLE, Settings(max_message_chars=123))["components"]["schemas"]
    assert {"Thing", "ChatRequest", "ErrorBody", "Event"} <= set(schemas)
    assert "RunOut" not in schemas  # no operation here answers with it
    assert schemas["ChatRequest"]["properties"]["message"]["maxLength"] == 123


def test_a_route_without_an_operation_is_documented_from_its_docstring() -> None:
    operation = document(TABLE, Settings())["paths"]["/plain"]["get"]
    assert (operation["summary"], operation["tags"]) == ("A page of its own.", [UNDESCRIBED])
    assert operation["security"] == []


def test_every_route_of_the_service_but_its_pages_and_files_declares_its_operation() -> None:
    """So that none reaches /openapi.json (and the contract test) as `undescribed`."""
    settings = Settings(
        app_env="test", database_url="postgresql+asyncpg://nowhere/none", jwt_secret="s" * 40
    )
    undeclared = {entry.path for entry in walk(create_app(settings).routes) if not entry.operation}
    assert undeclared == {
        "/",
        "/static/{path:path}",
        "/openapi.json",
        "/docs",
        "/docs/init.js",
        "/docs/assets/{path:path}",
    }


def test_an_event_field_left_out_while_none_is_optional_and_never_null() -> None:
    error = event_schemas()["ErrorEvent"]
    stored_through = error["properties"]["stored_through"]
    assert stored_through["type"] == "integer" and "anyOf" not in stored_through
    assert "default" not in stored_through and "stored answer" in stored_through["description"]
    assert "stored_through" not in error["required"]
