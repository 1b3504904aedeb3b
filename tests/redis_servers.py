"""Redis servers of the tests' own: Debian's `redis-server`, on free ports, in a temporary
directory, keeping nothing on disk (as a cache-configured Redis would not).

A single server, or a real cluster of three masters (each `--cluster-enabled yes`, joined by
`redis-cli --cluster create`). Any server can be stopped and started again empty, on the same
port: a cluster node comes back with its slots (its nodes.conf is the cluster's configuration,
not data) and none of its keys. The machine's own Redis (port 6379) is never touched.

The bench (tools/log_ceiling.py) starts its servers here too.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

READY_SECONDS = 20.0


def redis_binaries() -> tuple[str, str]:
    """The paths of `redis-server` and `redis-cli`. Without them a test skips with the reason,
    except in CI (`CI` set), where it fails: .ci/run installs Debian's redis-server."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        missing = "redis-server and redis-cli are needed (Debian: apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    return server, cli


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class RedisServer:
    """One `redis-server` process of ours; `restart_empty()` stops it and starts it again with
    nothing in it."""

    def __init__(self, directory: Path, *, cluster: bool = False, tls: bool = False) -> None:
        self.directory = directory
        self.cluster = cluster
        self.tls = tls
        self.port, self.bus_port = _free_ports(2)
        self._server, self._cli = redis_binaries()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for leftover in ("dump.rdb", "appendonly.aof", "appendonlydir"):
            path = self.directory / leftover
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        arguments = [
            self._server,
            *self._port_arguments(),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "no",
            "--protected-mode", "no",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        if self.cluster:
            arguments += [
                "--cluster-enabled", "yes",
                "--cluster-port", str(self.bus_port),
                "--cluster-config-file", str(self.directory / "nodes.conf"),
                "--cluster-node-timeout", "2000",
            ]  # fmt: skip
        self._process = subprocess.Popen(arguments, stdout=subprocess.DEVNULL)
        self._until(lambda: self.cli("PING") == "PONG", "answers PING")

    def _port_arguments(self) -> list[str]:
        if not self.tls:
            return ["--port", str(self.port)]
        # A self-signed certificate, as Heroku's Key-Value Store presents.
        cert, key = self.directory / "server.crt", self.directory / "server.key"
        if not cert.exists():
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                 "-subj", "/CN=todo-chat-test", "-keyout", str(key), "-out", str(cert)],
                capture_output=True, timeout=60, check=True,
            )  # fmt: skip
        return [
            "--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(cert),
            "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
            "--tls-auth-clients", "no",
        ]  # fmt: skip

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()  # nothing to save, and nothing saved: as a crash would leave it
            process.wait(timeout=10)

    def restart_empty(self) -> None:
        self.stop()
        self.start()
        if self.cluster:
            self._until(lambda: "cluster_state:ok" in self.cli("CLUSTER", "INFO"), "rejoins")

    def cli(self, *command: str) -> str:
        """A command through `redis-cli`: its answer, or "" when the server does not answer."""
        done = subprocess.run(
            [
                self._cli,
                "-p",
                str(self.port),
                *(("--tls", "--insecure") if self.tls else ()),
                *command,
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return done.stdout.strip()

    def _until(self, check: object, what: str) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while not check():  # type: ignore[operator]
            if self._process is not None and self._process.poll() is not None:
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server on {self.port} exited:\n{log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on {self.port}: never {what}")
            time.sleep(0.02)


class RedisCluster:
    """Three masters, no replicas, every slot covered."""

    def __init__(self, directory: Path) -> None:
        self.nodes = [RedisServer(directory / f"node{i}", cluster=True) for i in range(3)]

    @property
    def url(self) -> str:
        """Any node's URL: the client learns the others from it."""
        return self.nodes[0].url

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        _, cli = redis_binaries()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            timeout=60,
            check=True,
        )
        for node in self.nodes:
            node._until(lambda n=node: "cluster_state:ok" in n.cli("CLUSTER", "INFO"), "is ok")

    def node_of(self, key: str) -> RedisServer:
        """The master that holds `key`."""
        slot = int(self.nodes[0].cli("CLUSTER", "KEYSLOT", key))
        for node in self.nodes:
            for line in node.cli("CLUSTER", "NODES").splitlines():
                fields = line.split()
                if "myself" not in fields[2]:
                    continue
                for span in fields[8:]:
                    low, _, high = span.partition("-")
                    if int(low) <= slot <= int(high or low):
                        return node
        raise LookupError(f"no node holds slot {slot}")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@contextmanager
def redis_server(*, tls: bool = False) -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix="todo-chat-redis-") as directory:
        server = RedisServer(Path(directory), tls=tls)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@contextmanager
def redis_cluster() -> Iterator[RedisCluster]:
    with tempfile.TemporaryDirectory(prefix="todo-chat-redis-cluster-") as directory:
        cluster = RedisCluster(Path(directory))
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()


@pytest.fixture(scope="session")
def redis_single() -> Iterator[RedisServer]:
    """A Redis of the tests' own for the session (not to be stopped: see `redis_server`)."""
    with redis_server() as server:
        yield server


@pytest.fixture(scope="session")
def redis_three_masters() -> Iterator[RedisCluster]:
    """A three-master cluster of the tests' own for the session (not to be stopped)."""
    with redis_cluster() as cluster:
        yield cluster


Servers = RedisServer | RedisCluster


@pytest.fixture(scope="module", params=["single", "cluster"])
def single_and_cluster(request: pytest.FixtureRequest) -> Iterator[Servers]:
    """A Redis of the module's own, then a three-master cluster: a module whose tests stop or
    empty them (each module its own, so no other module sees that)."""
    servers: Servers
    with redis_server() if request.param == "single" else redis_cluster() as servers:
        yield servers


@pytest.fixture
def servers(single_and_cluster: Servers) -> Servers:
    """What a test of `single_and_cluster`'s module takes: the servers of its parameter."""
    return single_and_cluster


def nodes_of(servers: Servers) -> list[RedisServer]:
    return servers.nodes if isinstance(servers, RedisCluster) else [servers]


def stop_all(servers: Servers) -> None:
    for node in nodes_of(servers):
        node.stop()


def start_all_empty(servers: Servers) -> None:
    """Every node started again with no data (a cluster's nodes keep their membership, in
    their nodes.conf), back when a cluster says it is whole."""
    for node in nodes_of(servers):
        node.start()
    for node in nodes_of(servers):
        if node.cluster:
            node._until(lambda n=node: "cluster_state:ok" in n.cli("CLUSTER", "INFO"), "is ok")
