"""An identity provider's signing keys (its JSON Web Key Set), fetched over HTTP and kept.

Deliberate choices (tests/auth/test_jwks.py holds each one):
- Fetched with httpx's async client: the event loop never waits on the provider. Each fetch is
  bounded: 3 s to connect, 5 s in all, 1 MiB. A client per fetch, as fetches are rare, so there
  is nothing to open or close in the lifespan.
- One fetch at a time in a process; a request that waited for another's fetch takes its outcome
  instead of fetching again.
- No set yet (the provider has been down since start-up): the service starts anyway and
  answers 503 `auth_unavailable` meanwhile. It tries again after a failed fetch only once
  RETRY_FIRST has passed, then after twice that, and so on up to COOL_DOWN: whatever the
  provider's state, requests (with any token, made-up or not) cannot make the service hammer
  it, and a short outage at start-up still ends within seconds.
- A set is kept for MAX_AGE, then fetched again on its next use, so a key the provider removed
  stops verifying within MAX_AGE. If that fetch fails the old set stays in use (a provider's
  outage signs nobody out), retried at most once per COOL_DOWN.
- A `kid` not in the set (a key rotated in) fetches again at once, but at most once per
  COOL_DOWN: tokens with made-up `kid`s cannot make the service hammer the provider. Within
  the cool-down such a token is refused, or, when the last fetch failed, answered 503.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import httpx

logger = logging.getLogger(__name__)

MAX_AGE_SECONDS = 600.0
COOL_DOWN_SECONDS = 30.0
RETRY_FIRST_SECONDS = 1.0
CONNECT_TIMEOUT_SECONDS = 3.0
FETCH_TIMEOUT_SECONDS = 5.0
MAX_BYTES = 1024 * 1024

Jwk = Mapping[str, Any]


class KeysUnavailable(Exception):
    """The provider's keys could not be fetched, and the answer depends on them."""


class KeySet:
    def __init__(
        self,
        url: str,
        *,
        max_age: float = MAX_AGE_SECONDS,
        cool_down: float = COOL_DOWN_SECONDS,
        timeout: float = FETCH_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._max_age = max_age
        self._cool_down = cool_down
        self._timeout = timeout
        self._clock = clock
        self._keys: list[Jwk] | None = None
        self._fetched_at = 0.0
        self._attempted_at = 0.0
        self._attempts = 0
        self._failed = False
        self._failures = 0  # failed fetches since the last success
        self._lock = anyio.Lock()

    async def key(self, kid: str | None) -> Jwk | None:
        """The signing key named `kid` (with no `kid`, the set's only key), or None when the
        provider has no such key. Raises KeysUnavailable when the answer needs a fetch that
        failed."""
        now = self._clock()
        cooling = now - self._attempted_at < self._cool_down
        if self._keys is not None:
            found = _find(self._keys, kid)
            fresh = now - self._fetched_at < self._max_age
            if (found is not None and (fresh or cooling)) or (found is None and cooling):
                return self._answer(found)
        elif self._failures and now - self._attempted_at < self._retry_after():
            raise KeysUnavailable(f"cannot fetch {self.url}")
        await self._refresh()
        if self._keys is None:
            raise KeysUnavailable(f"cannot fetch {self.url}")
        return self._answer(_find(self._keys, kid))

    def _answer(self, found: Jwk | None) -> Jwk | None:
        if found is None and self._failed:
            raise KeysUnavailable(f"cannot fetch {self.url}")
        return found

    def _retry_after(self) -> float:
        """How long to wait after the last failed fetch while there is no set at all."""
        doublings: int = min(self._failures - 1, 16)
        return min(self._cool_down, RETRY_FIRST_SECONDS * 2.0**doublings)

    async def _refresh(self) -> None:
        attempts = self._attempts
        async with self._lock:
            if self._attempts != attempts:
                return  # fetched while this request waited: take that outcome
            try:
                keys = await self._fetch()
            except (httpx.HTTPError, TimeoutError, ValueError) as error:
                logger.warning("cannot fetch the signing keys from %s: %r", self.url, error)
                self._failed = True
                self._failures += 1
            else:
                self._keys, self._fetched_at, self._failed = keys, self._clock(), False
                self._failures = 0
            finally:
                self._attempts += 1
                self._attempted_at = self._clock()

    async def _fetch(self) -> list[Jwk]:
        timeout = httpx.Timeout(self._timeout, connect=min(self._timeout, CONNECT_TIMEOUT_SECONDS))
        body = bytearray()
        with anyio.fail_after(self._timeout):
            async with (
                httpx.AsyncClient(timeout=timeout) as client,
                client.stream("GET", self.url, headers={"Accept": "application/json"}) as answer,
            ):
                answer.raise_for_status()
                async for chunk in answer.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_BYTES:
                        raise ValueError(f"the key set is larger than {MAX_BYTES} bytes")
        document = json.loads(body)
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("not a JSON Web Key Set (no 'keys' list)")
        return [
            key
            for key in document["keys"]
            if isinstance(key, dict) and key.get("use", "sig") == "sig"
        ]


def _find(keys: list[Jwk], kid: str | None) -> Jwk | None:
    if kid is None:
        return keys[0] if len(keys) == 1 else None
    return next((key for key in keys if key.get("kid") == kid), None)
