"""A user's tasks: a page of them, adding, changing and deleting one."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.domain import TaskChanges, TaskFilter, TaskNotFound
from app.tasks import UserTasks
from app.web.errors import ApiError
from app.web.openapi.operation import (
    BODY_ERRORS,
    ID_SCHEMA,
    ApiRoute,
    Operation,
    Param,
    id_cursor,
    limit_param,
)
from app.web.requests import id_in_path, id_in_query, page_size, read_body, user_id
from app.web.schemas import TaskCreate, TaskOut, TaskPage, TaskUpdate
from app.web.state import state_of

MAX_TASKS = 1000
_TASK_ID = {"task_id": ID_SCHEMA}


def _tasks(request: Request) -> UserTasks:
    return UserTasks(state_of(request).database, user_id(request))


async def list_tasks(request: Request) -> Response:
    """A page of the user's tasks in the order they were added; `next_after` is the id to ask
    the next page with (`?after=`), null on the last."""
    raw_status = request.query_params.get("status", "all")
    try:
        status = TaskFilter(raw_status)
    except ValueError:
        raise ApiError(
            422, "invalid_request", "status: must be one of pending, completed, all"
        ) from None
    limit = page_size(request, 200, MAX_TASKS)
    after_id = id_in_query(request, "after") or 0
    tasks = await _tasks(request).list(status, limit=limit + 1, after_id=after_id)
    page, more = tasks[:limit], len(tasks) > limit
    return JSONResponse(
        {
            "tasks": [TaskOut.of(task) for task in page],
            "next_after": page[-1].id if more else None,
        }
    )


_LIST_TASKS = Operation(
    "A page of the user's tasks, in the order they were added",
    answer=TaskPage,
    params=(
        Param(
            "status",
            "query",
            {"type": "string", "enum": ["pending", "completed", "all"], "default": "all"},
            "Which tasks.",
        ),
        limit_param(200, MAX_TASKS),
        id_cursor("after", "`next_after` of the previous page."),
    ),
)


async def create_task(request: Request) -> Response:
    body = await read_body(request, TaskCreate)
    task = await _tasks(request).add(body.title, body.description)
    return JSONResponse(TaskOut.of(task), status_code=201)


_CREATE_TASK = Operation(
    "Add a task", body=TaskCreate, answer=TaskOut, status=201, errors=BODY_ERRORS
)


async def update_task(request: Request) -> Response:
    task_id = id_in_path(request, "task_id")
    body = await read_body(request, TaskUpdate)
    changes = TaskChanges(title=body.title, description=body.description, completed=body.completed)
    task = await _tasks(request).update(task_id, changes)
    return JSONResponse(TaskOut.of(task))


_UPDATE_TASK = Operation(
    "Change a task",
    body=TaskUpdate,
    answer=TaskOut,
    path_params=_TASK_ID,
    raises=(TaskNotFound,),
    errors=BODY_ERRORS,
)


async def delete_task(request: Request) -> Response:
    task_id = id_in_path(request, "task_id")
    await _tasks(request).delete(task_id)
    return Response(status_code=204)


_DELETE_TASK = Operation("Delete a task", status=204, path_params=_TASK_ID, raises=(TaskNotFound,))


routes = [
    ApiRoute("/tasks", list_tasks, methods=["GET"], operation=_LIST_TASKS),
    ApiRoute("/tasks", create_task, methods=["POST"], operation=_CREATE_TASK),
    ApiRoute("/tasks/{task_id}", update_task, methods=["PATCH"], operation=_UPDATE_TASK),
    ApiRoute("/tasks/{task_id}", delete_task, methods=["DELETE"], operation=_DELETE_TASK),
]
