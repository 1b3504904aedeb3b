"""A locust load test of a running todo-chat: `make loadtest` (headless, bounded), or
`locust -f tools/locustfile.py --host http://127.0.0.1:8000` for the web UI.

Each simulated user mints its own token with the service's development secret (JWT_SECRET, or
the one `make run` keeps in .data/), holds a conversation (adds, lists and completes tasks),
reads the SSE stream, and reports two custom metrics: `time to first token` and
`time to done`. One stream in ten is abandoned after its first token, as a closed tab would.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from typing import Any

from locust import FastHttpUser, between, task

from app.settings import Settings
from app.web.auth import issue_token

DISCONNECT_SHARE = 0.1
_settings = Settings.from_env()


class ChatUser(FastHttpUser):
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        self.user_id = f"locust-{uuid.uuid4().hex[:12]}"
        self.headers = {"Authorization": f"Bearer {issue_token(_settings, self.user_id)}"}
        self.conversation_id: int | None = None
        self.titles: list[str] = []

    @task(3)
    def add(self) -> None:
        title = random.choice(["buy milk", "call mom", "water the plants", "book flights"])
        if self._chat(f"add {title} {random.randint(1, 999)}"):
            self.titles.append(title)

    @task(2)
    def list_pending(self) -> None:
        self._chat("what's left?")

    @task(1)
    def complete(self) -> None:
        if self.titles:
            self._chat(f"done with {self.titles.pop(0)}")

    def _chat(self, message: str) -> bool:
        began = time.perf_counter()
        body: dict[str, Any] = {"message": message, "conversation_id": self.conversation_id}
        abandon = random.random() < DISCONNECT_SHARE
        first_token: float | None = None
        response = self.client.request(
            "POST",
            f"/api/{self.user_id}/chat/stream",
            json=body,
            headers=self.headers,
            stream=True,
            name="/api/[user]/chat/stream",
        )
        if response.status_code == 409:  # the previous answer is still running
            return False
        buffer = ""
        for chunk in response.iter_content(4096):  # type: ignore[no-untyped-call]
            buffer += chunk if isinstance(chunk, str) else chunk.decode()
            blocks = buffer.split("\n\n")
            buffer = blocks.pop()
            for block in blocks:
                if not block.startswith("data: "):
                    continue
                event = json.loads(block[6:])
                if event["type"] == "start":
                    self.conversation_id = event["conversation_id"]
                elif event["type"] == "text" and first_token is None:
                    first_token = time.perf_counter() - began
                    self._metric("time to first token", first_token)
                    if abandon:
                        return True  # hang up; the run finishes on the server anyway
                elif event["type"] == "done":
                    self._metric("time to done", time.perf_counter() - began)
                    return True
                elif event["type"] == "error":
                    self._metric("time to done", time.perf_counter() - began, event["code"])
                    return False
        self._metric("time to done", time.perf_counter() - began, "stream ended early")
        return False

    def _metric(self, name: str, seconds: float, failure: str | None = None) -> None:
        self.environment.events.request.fire(
            request_type="SSE",
            name=name,
            response_time=seconds * 1000,
            response_length=0,
            exception=RuntimeError(failure) if failure else None,
            context={},
        )
