"""What every protocol's request is checked for alike: the ids a client makes (a chat's, a
thread's, a message's) and the user's new message. The rules are the service's, not a
protocol's, so each protocol's request model says them with these."""

from __future__ import annotations

from typing import Any

from app.domain import has_unstorable

MAX_CLIENT_ID_CHARS = 200
# `client_id_is_valid` in JSON Schema, for /openapi.json.
CLIENT_ID_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_CLIENT_ID_CHARS,
    "pattern": "^(?!\\.\\.?$)[ -.0-\\[\\]-~]+$",
}
CLIENT_ID_RULE = f"1 to {MAX_CLIENT_ID_CHARS} printable ASCII characters, without / or \\"


def client_id_is_valid(value: str) -> bool:
    """An id that fits one URL path segment (a resume URL names it): printable ASCII without
    slashes, and not "." or ".."."""
    return (
        0 < len(value) <= MAX_CLIENT_ID_CHARS
        and value.isascii()
        and value.isprintable()
        and not any(c in value for c in "/\\")
        and value not in (".", "..")
    )


def user_text_problem(text: str, max_chars: int | None) -> str | None:
    """Why the user's new message cannot be sent as it is, or None."""
    if not text.strip():
        return "must have text"
    if max_chars is not None and len(text) > max_chars:
        return f"must be at most {max_chars} characters"
    if has_unstorable(text):
        return "must not contain U+0000 or unpaired surrogates"
    return None
