"""Schemathesis against the live service, driven by its own /openapi.json: no server error and no
answer the document does not allow (status, content type, headers, body; the streams' events
against the `Event` union), for every operation, with a valid token.

Bounded for `make test`: seeded (`derandomize`), `CONTRACT_EXAMPLES` examples per operation
(5 here: about 40 s on this machine); `make fuzz` runs it with 100. The service runs in a
process of its own (Schemathesis calls it through blocking `requests`), on the offline model,
so each stream's run ends; a user of its own, whose id every path is given.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
import schemathesis.pytest
from hypothesis import HealthCheck, assume, settings
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.pytest._test_builder import build_operation_test
from schemathesis.specs.openapi.checks import allow_header_conformance

from app.settings import PROJECT_ROOT, Settings
from app.web.auth import issue_token
from app.web.openapi.document import UNDESCRIBED
from tests.conftest import TEST_SECRET
from tests.support import environment, free_port, wait_until_ready

EXAMPLES = int(os.environ.get("CONTRACT_EXAMPLES", "5"))
USER_MESSAGE: dict[str, Any] = {"role": "user", "parts": [{"type": "text", "text": "hello"}]}


@pytest.fixture
def service(database_url: str) -> Iterator[str]:
    port = free_port()
    env = environment(
        DATABASE_URL=database_url,
        APP_ENV="test",
        JWT_SECRET=TEST_SECRET,
        MAX_ACTIVE_RUNS_PER_USER="50",
        LOG_FORMAT="json",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/ready", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_the_service_keeps_its_documented_contract(service: str) -> None:
    """Each described operation (the pages and files, which declare no operation,
    are left out): the document's examples, its bounds (Schemathesis's coverage phase: each
    minimum, maximum and enum value), then generated requests."""
    schema = schemathesis.openapi.from_url(f"{service}/openapi.json")
    # A query parameter the service does not know is ignored, not refused: a cache-buster
    # (`?_=…`) or a tracker's must not break a request. So none is sent expecting a 4xx.
    schema.config.generation.update(allow_extra_parameters=False)
    user = f"contract-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {issue_token(Settings(jwt_secret=TEST_SECRET), user)}"}

    def call(case: schemathesis.Case[Any]) -> None:
        assume(not _has_float(case.body))
        if case.headers and "Idempotency-Key" in case.headers:
            # A key is one send's: the same key with another body is refused (422), by design.
            case.headers["Idempotency-Key"] = uuid.uuid4().hex
        if case.query and case.operation.path == "/api/{user_id}/conversations":
            case.query.pop("before", None)  # an opaque cursor: made-up ones are all 422
        last_users = {
            "/api/{user_id}/ai/chat": USER_MESSAGE,
            "/api/{user_id}/ag-ui": {"id": uuid.uuid4().hex, "role": "user", "content": "hello"},
        }
        if case.operation.path in last_users and isinstance(case.body, dict):
            # The last message must be the user's, with text: a rule about the last item of a
            # list, which a JSON schema cannot say. Schemathesis checks the body again after.
            messages = case.body.get("messages")
            if isinstance(messages, list) and messages:
                last = last_users[case.operation.path]
                case.body = {**case.body, "messages": [*messages, last]}
        if case.path_parameters and "user_id" in case.path_parameters:
            case.path_parameters["user_id"] = user
        # Not checked: the Allow header of a 405. Starlette answers with the methods of the first
        # route whose path matches, and two routes share /tasks (GET, POST), as the route table
        # says them one by one; the status and the error body are checked.
        case.call_and_validate(
            base_url=service,
            headers=headers,
            timeout=60,
            excluded_checks=[allow_header_conformance],
        )

    bounded = settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    failures: list[str] = []
    tested = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # raises for a broken operation
        if UNDESCRIBED in (operation.definition.raw.get("tags") or []):
            continue
        tested += 1
        # How Schemathesis's own pytest plugin builds each operation's test (the plugin itself
        # does not run under pytest 9 yet): its examples, coverage and fuzzing phases.
        test = build_operation_test(
            config=schema.config,
            operation=operation,
            test_func=call,
            given_kwargs={},
            feedback=FeedbackSources(),
            explicit_settings=bounded,
        )
        try:
            test()
        except BaseException as error:  # every operation is tried; all failures are reported
            failures.append(f"{operation.label}: {error}")
    assert tested >= 15
    assert failures == [], "\n\n".join(failures)


def _has_float(value: Any) -> bool:
    """JSON Schema counts 1.0 as an integer; the service's bodies are strict and take only 1
    (tests/e2e/test_inputs.py), which a schema cannot say: such bodies are not sent."""
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_float(item) for item in value)
    return False
