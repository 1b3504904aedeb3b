"""An identity provider of the test's own: signing keys, the tokens they sign, and the JWKS
endpoint that publishes them over real HTTP on a loopback port.

The port is the provider's for its whole life, so "down" is exact and needs no waiting: the
port bound but not listening refuses every connection, nobody else can take it, and starting
again listens on it.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec as curves
from cryptography.hazmat.primitives.asymmetric import rsa as rsa_keys
from jose import jwk, jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    private_pem: str
    public_pem: str

    @classmethod
    def rsa(cls, kid: str, algorithm: str = "RS256") -> SigningKey:
        return cls._of(
            kid, algorithm, rsa_keys.generate_private_key(public_exponent=65537, key_size=2048)
        )

    @classmethod
    def ec(
        cls, kid: str, algorithm: str = "ES256", curve: curves.EllipticCurve | None = None
    ) -> SigningKey:
        return cls._of(kid, algorithm, curves.generate_private_key(curve or curves.SECP256R1()))

    @classmethod
    def _of(
        cls, kid: str, algorithm: str, key: rsa_keys.RSAPrivateKey | curves.EllipticCurvePrivateKey
    ) -> SigningKey:
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        public = (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        return cls(kid, algorithm, private, public)

    def jwk(self, **changes: Any) -> dict[str, Any]:
        """The public key as a provider publishes it."""
        published: dict[str, Any] = jwk.construct(self.public_pem, self.algorithm).to_dict()
        return {**published, "kid": self.kid, "use": "sig", **changes}

    def token(
        self, user: str = "alice", *, claims: dict[str, Any] | None = None, **header: Any
    ) -> str:
        body = {"sub": user, "exp": int(time.time()) + 300, **(claims or {})}
        named = {"kid": self.kid, **header}
        headers = {name: value for name, value in named.items() if value is not None}
        return jwt.encode(body, self.private_pem, algorithm=self.algorithm, headers=headers)


class IdentityProvider:
    """A JWKS endpoint at `url`, serving `keys`; `fetches` counts the requests it answered.
    While `broken`, it is up but answers every fetch 503 (and still counts it)."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        self.broken = False
        self._socket = _bound(0)
        self.port: int = self._socket.getsockname()[1]
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/.well-known/jwks.json"

    def publish(self, *keys: SigningKey) -> None:
        self.keys = [key.jwk() for key in keys]

    async def start(self) -> None:
        app = Starlette(routes=[Route("/.well-known/jwks.json", self._jwks)])
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Down: the listening socket closed, the port bound again without listening."""
        assert self._server is not None and self._task is not None
        self._server.should_exit = True
        await self._task
        self._server = self._task = None
        self._socket.close()
        self._socket = _bound(self.port)

    async def _jwks(self, request: Request) -> JSONResponse:
        self.fetches += 1
        if self.broken:
            return JSONResponse({"error": "unavailable"}, status_code=503)
        return JSONResponse({"keys": self.keys}, headers={"Cache-Control": "max-age=600"})

    async def __aenter__(self) -> IdentityProvider:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._server is not None:
            await self.stop()
        self._socket.close()


def _bound(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock
