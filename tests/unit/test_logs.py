"""Log lines: text by default, one JSON object per line with LOG_FORMAT=json, each with the
request id of the context that logged it; configuring twice leaves one handler."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from app import logs


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    logger = logging.getLogger()
    handlers, level = list(logger.handlers), logger.level
    yield logger
    logger.handlers[:] = handlers
    logger.setLevel(level)


def test_json_lines_carry_the_request_id(
    root: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("json")
    logs.configure("json")  # a second app in the same process: still one line per record
    token = logs.REQUEST_ID.set("req-7")
    try:
        logging.getLogger("app.test").warning("hello %s", "there")
    finally:
        logs.REQUEST_ID.reset(token)
    logging.getLogger("app.test").info("outside")
    lines = capsys.readouterr().err.splitlines()
    records = [json.loads(line) for line in lines]
    assert [(r["message"], r["request_id"], r["level"]) for r in records] == [
        ("hello there", "req-7", "WARNING"),
        ("outside", "-", "INFO"),
    ]
    assert records[0]["logger"] == "app.test" and records[0]["time"].endswith("+00:00")


def test_text_is_the_default_and_readable(
    root: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("text")
    logging.getLogger("app.test").error("oops")
    assert capsys.readouterr().err == "ERROR app.test [-]: oops\n"
