"""What the protocols whose clients name threads (the AI SDK's chats, AG-UI's threads) share:
stopping the run going in a thread. A client's own stop only drops its connection."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.domain import Thread
from app.web.requests import user_id
from app.web.schemas import RunOut
from app.web.state import state_of


async def cancel_in_thread(request: Request, thread: Thread) -> Response:
    """The cancelled run (`RunOut`), or 204 when nothing was going in the thread."""
    chat, user = state_of(request).chat, user_id(request)
    active = await chat.thread_active_run(user, thread)
    if active is None:
        return Response(status_code=204)
    return JSONResponse(RunOut.of(await chat.cancel(user, active.id)))
