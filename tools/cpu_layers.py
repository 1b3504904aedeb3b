"""Where the service's CPU per tool-using turn goes, by layer, measured: the service under
`--concurrency` clients (as `make bench`'s a32: no model delay) sampling its own stack each time
it has used CPU (`sample_cpu`: ITIMER_PROF, user and system time), the samples' shares scaled to
its CPU per turn from /proc; and its round trips to PostgreSQL per turn, counted by a proxy
between it and the database, by statement. `--sdk`: the SDK alone too, sampled alike, under the
service's collector settings as every floor of the limit runs (`tools.sdk_floor`).

    python -m tools.cpu_layers [--turns 600] [--concurrency 32] [--sdk] [--py-spy [--rate 250]]

Two tables of the samples: by the innermost frame's package (the library, or the subpackage of
ours, whose code was running), and by the outermost frame of ours on the stack (inclusive: what
of ours caused the work; "none of ours" is the server's own work around requests, and the
libraries' set-up of ours, such as the loop's callbacks and uvicorn's protocol). Then, in a
second server of its own (the proxy's hops would move the first's CPU), the round trips: a
simple query (`Q`, as BEGIN and COMMIT are sent) or an extended query's `Sync` (a statement,
or its preparation), each named by its statement, per turn.

With `--py-spy`, py-spy samples from outside by the wall clock a thread that is not sleeping:
on a loaded machine a thread waiting for a core (or for its write to wake PostgreSQL) counts as
running too, so the shares, not the sample counts, are what is scaled to CPU per turn. Compare
the rows of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import sysconfig
import tempfile
from collections import Counter
from pathlib import Path
from types import CodeType, FrameType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import uvloop

from app.settings import PROJECT_ROOT
from tests.support import free_port
from tools.bench_server import StampingModel
from tools.cpu_split import drive, user_system
from tools.sdk_floor import _turns as sdk_turns
from tools.sdk_floor import collector
from tools.servers import Process, measuring_database, server_environment, wait_listening

_STDLIB = sysconfig.get_paths()["stdlib"] + "/"
_SITE = re.compile(r"/site-packages/([^/]+)")
_FRAME = re.compile(r"^(?P<function>.*) \((?P<path>[^()]*?):(?P<line>\d+)\)$")
_PACKAGES = {"pydantic_core": "pydantic", "httptools": "uvicorn/httptools"}
_SSL_REQUEST = (80877103, 80877104)  # SSLRequest, GSSENCRequest: answered "no" here
_INTERVAL = 0.0005


def layer(path: str) -> str:
    """The package a frame's file belongs to: a library, a subpackage (or top module) of ours,
    the bench's model (tools/), or the standard library's module."""
    ours = str(PROJECT_ROOT) + "/"
    if path.startswith(ours + "app/"):
        parts = path[len(ours) :].split("/")
        return "/".join(parts[:-1]) if len(parts) > 2 else parts[-1].removesuffix(".py")
    if path.startswith(ours + "tools/"):
        return "tools (the bench's model)"
    if found := _SITE.search(path):
        name = found.group(1).removesuffix(".py")
        return _PACKAGES.get(name, name)
    if path.startswith(_STDLIB):
        return "stdlib " + path[len(_STDLIB) :].split("/")[0].removesuffix(".py")
    return "other " + path.rsplit("/", 1)[-1]


def _frames(stack: str) -> list[tuple[str, str]]:
    """(function, path) of each frame, outermost first."""
    frames = []
    for frame in stack.split(";"):
        found = _FRAME.match(frame)
        if found:
            frames.append((found["function"], found["path"]))
    return frames


def attribute(raw: str) -> dict[str, Counter[str]]:
    """py-spy's collapsed stacks, counted by the innermost frame's layer and by the outermost
    frame of ours (`module:function`)."""
    innermost: Counter[str] = Counter()
    outermost: Counter[str] = Counter()
    ours = str(PROJECT_ROOT) + "/app/"
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = _frames(stack)
        if not frames:
            continue
        innermost[layer(frames[-1][1])] += int(count)
        first = next(((f, p) for f, p in frames if p.startswith(ours)), None)
        cause = "none of ours: " + layer(frames[-1][1])
        if first is not None:
            cause = f"{first[1][len(ours) - 4 :].removesuffix('.py')}:{first[0]}"
        outermost[cause] += int(count)
    return {"innermost": innermost, "outermost_ours": outermost}


class RoundTrips:
    """A proxy to PostgreSQL that counts the round trips its clients make, by statement."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self.by_statement: Counter[str] = Counter()
        self.open = 0

    async def serve(self, port: int) -> asyncio.Server:
        return await asyncio.start_server(self._client, "127.0.0.1", port)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._host.startswith("/"):  # a Unix socket's directory, as libpq names it
            socket = f"{self._host}/.s.PGSQL.{self._port}"
            upstream_reader, upstream_writer = await asyncio.open_unix_connection(socket)
        else:
            upstream_reader, upstream_writer = await asyncio.open_connection(self._host, self._port)
        back = asyncio.ensure_future(_pipe(upstream_reader, writer))
        self.open += 1
        try:
            await self._forward(reader, writer, upstream_writer)
        finally:
            upstream_writer.close()
            await back
            self.open -= 1

    async def _forward(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstream: asyncio.StreamWriter,
    ) -> None:
        named: dict[bytes, str] = {}
        pending = "?"
        started = False
        try:
            while True:
                if not started:  # untyped: a start-up message, or a request for encryption
                    head = await reader.readexactly(4)
                    body = await reader.readexactly(int.from_bytes(head, "big") - 4)
                    if int.from_bytes(body[:4], "big") in _SSL_REQUEST:
                        writer.write(b"N")
                        continue
                    upstream.write(head + body)
                    started = True
                    continue
                head = await reader.readexactly(5)
                body = await reader.readexactly(int.from_bytes(head[1:], "big") - 4)
                upstream.write(head + body)
                kind = head[:1]
                if kind == b"Q":
                    self.by_statement[_label(body.split(b"\0", 1)[0])] += 1
                elif kind == b"P":
                    name, query = body.split(b"\0", 2)[:2]
                    named[name] = pending = _label(query)
                elif kind == b"B":
                    pending = named.get(body.split(b"\0", 2)[1], pending)
                elif kind == b"S":
                    self.by_statement[pending] += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
    except ConnectionError:
        pass
    finally:
        writer.close()


def _label(query: bytes) -> str:
    text = " ".join(query.decode(errors="replace").split())
    return text if len(text) <= 72 else text[:69] + "..."


def _through(database_url: str, port: int) -> tuple[str, str, int]:
    """The URL with the proxy's port in place of the database's, and the database's address."""
    parts = urlsplit(database_url)
    query = dict(parse_qsl(parts.query))
    host = query.pop("host", None) or parts.hostname or "127.0.0.1"
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}"
    proxied = urlunsplit(parts._replace(netloc=netloc, query=urlencode(query)))
    return proxied, host, parts.port or 5432


def sample_cpu(path: str) -> None:
    """In the measured server (`BENCH_CPU_SAMPLES`): at the first SIGUSR1, sample the stack of
    the main thread each time the process has used `_INTERVAL` of CPU (ITIMER_PROF counts
    user and system time, not waiting); at the next, stop and write the stacks to `path` in
    py-spy's collapsed form."""
    import greenlet  # type: ignore[import-untyped]  # SQLAlchemy's: its sync part runs in a greenlet, cut off from its caller

    stacks: Counter[tuple[CodeType, ...]] = Counter()

    def sample(signum: int, frame: FrameType | None) -> None:
        codes, running = [], greenlet.getcurrent()
        while running is not None:
            while frame is not None:
                codes.append(frame.f_code)
                frame = frame.f_back
            running = running.parent  # where the greenlet was switched to from
            frame = None if running is None else running.gr_frame
        stacks[tuple(codes)] += 1

    def toggle(signum: int, frame: object) -> None:
        if not signal.getitimer(signal.ITIMER_PROF)[0]:
            stacks.clear()
            signal.setitimer(signal.ITIMER_PROF, _INTERVAL, _INTERVAL)
            return
        signal.setitimer(signal.ITIMER_PROF, 0)
        lines = (
            ";".join(f"{c.co_qualname} ({c.co_filename}:{c.co_firstlineno})" for c in stack[::-1])
            + f" {count}"
            for stack, count in stacks.items()
        )
        Path(f"{path}.tmp").write_text("\n".join(lines))
        Path(f"{path}.tmp").rename(path)

    signal.signal(signal.SIGPROF, sample)
    signal.siginterrupt(signal.SIGPROF, False)  # restart the system calls it lands in
    signal.signal(signal.SIGUSR1, toggle)


async def profile(
    database_url: str, turns: int, concurrency: int, rate: int, *, py_spy: bool
) -> dict[str, Any]:
    """The service's CPU per turn, and its samples by layer, after a warm-up of 50 turns:
    sampled by CPU time in the process (`sample_cpu`), or by py-spy from outside."""
    port = free_port()
    output = Path(tempfile.mkdtemp(prefix="cpu-layers-")) / "stacks.txt"
    env = server_environment(database_url, **({} if py_spy else {"BENCH_CPU_SAMPLES": str(output)}))
    process = Process(["service", str(port), "0", "0"], env)
    try:
        await wait_listening(port, process)
        await drive(port, 50, concurrency)
        if py_spy:
            spy = subprocess.Popen(  # noqa: ASYNC220 (stopped below, not awaited on)
                [
                    str(Path(sys.executable).with_name("py-spy")),
                    *("record", "--pid", str(process.popen.pid), "--nonblocking"),
                    *("--rate", str(rate), "--format", "raw", "--full-filenames"),
                    *("--output", str(output)),
                ],
                stderr=subprocess.DEVNULL,
            )
            await asyncio.sleep(1)  # py-spy attached
        else:
            os.kill(process.popen.pid, signal.SIGUSR1)
        user, system = user_system(process)
        await drive(port, turns, concurrency)
        user_after, system_after = user_system(process)
        if py_spy:
            spy.send_signal(signal.SIGINT)  # py-spy writes its output when interrupted
            await asyncio.to_thread(spy.wait, 60)
        else:
            os.kill(process.popen.pid, signal.SIGUSR1)
            while not await asyncio.to_thread(output.exists):  # noqa: ASYNC110 (another process writes it)
                await asyncio.sleep(0.05)
    finally:
        process.stop()
    cpu_ms = (user_after - user + system_after - system) / turns * 1000
    return _tables(output, cpu_ms, "py-spy" if py_spy else "CPU time")


def _tables(stacks: Path, cpu_ms: float, sampler: str) -> dict[str, Any]:
    """The samples' shares, each as CPU per turn."""
    counted = attribute(stacks.read_text())
    samples = sum(counted["innermost"].values())
    return {
        "sampler": sampler,
        "cpu_ms_per_turn": round(cpu_ms, 2),
        "samples": samples,
        **{
            name: {key: round(n / samples * cpu_ms, 3) for key, n in table.most_common()}
            for name, table in counted.items()
        },
    }


def sdk_profile(turns: int, concurrency: int) -> dict[str, Any]:
    """The limit's SDK part (`tools.sdk_floor`, under the service's collector settings, as the
    bench runs it) sampled the same way, in a process of its own."""
    output = Path(tempfile.mkdtemp(prefix="cpu-layers-sdk-")) / "stacks.txt"
    command = [sys.executable, "-m", "tools.cpu_layers", f"--sdk-child={output}"]
    command += [f"--turns={turns}", f"--concurrency={concurrency}"]
    done = subprocess.run(command, cwd=PROJECT_ROOT, check=True, capture_output=True, text=True)
    return _tables(output, float(done.stdout.splitlines()[-1]), "CPU time")


def _sdk_child(output: str, turns: int, concurrency: int) -> None:
    model = StampingModel(delay_ms=0, tokens=0)
    with collector():
        uvloop.run(sdk_turns(50, model, min(concurrency, 50)))
        sample_cpu(output)
        os.kill(os.getpid(), signal.SIGUSR1)
        before = os.times()
        uvloop.run(sdk_turns(turns, model, concurrency))
        after = os.times()
        os.kill(os.getpid(), signal.SIGUSR1)
    print((after.user - before.user + after.system - before.system) / turns * 1000)


async def round_trips(database_url: str, turns: int, concurrency: int) -> dict[str, Any]:
    """The service's round trips to PostgreSQL per turn, by statement, after a warm-up."""
    proxy_port, port = free_port(), free_port()
    proxied, host, database_port = _through(database_url, proxy_port)
    proxy = RoundTrips(host, database_port)
    listening = await proxy.serve(proxy_port)
    process = Process(["service", str(port), "0", "0"], server_environment(proxied))
    try:
        await wait_listening(port, process)
        await drive(port, 50, concurrency)
        before = Counter(proxy.by_statement)
        await drive(port, turns, concurrency)
        counted = proxy.by_statement - before
    finally:
        process.stop()
        listening.close()
        for _ in range(100):  # its connections end with it
            if not proxy.open:
                break
            await asyncio.sleep(0.05)
    return {
        "per_turn": round(sum(counted.values()) / turns, 2),
        "by_statement": {key: round(n / turns, 3) for key, n in counted.most_common()},
    }


def _print(side: str, figures: dict[str, Any], args: argparse.Namespace) -> None:
    who = "the service" if side == "profile" else "the SDK alone (the service's collector)"
    print(
        f"CPU per tool-using turn of {who}, {args.concurrency} at once ({args.turns} turns):"
        f" {figures['cpu_ms_per_turn']} ms ({figures['samples']} samples, {figures['sampler']})"
    )
    for name, title in (("innermost", "innermost frame"), ("outermost_ours", "outermost of ours")):
        print(f"  by the {title} (ms per turn):")
        for key, ms in figures[name].items():
            if ms >= 0.02:
                print(f"    {ms:7.3f}  {key}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--py-spy", action="store_true", help="sample with py-spy (wall clock)")
    parser.add_argument("--rate", type=int, default=250, help="py-spy's samples a second")
    parser.add_argument("--round-trip-turns", type=int, default=200)
    parser.add_argument("--sdk", action="store_true", help="also the SDK alone, sampled alike")
    parser.add_argument("--output", help="write the figures as JSON")
    parser.add_argument("--sdk-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sdk_child:
        _sdk_child(args.sdk_child, args.turns, args.concurrency)
        return
    database_url = measuring_database("cpu-layers")
    report = {
        "profile": asyncio.run(
            profile(database_url, args.turns, args.concurrency, args.rate, py_spy=args.py_spy)
        ),
        "round_trips": asyncio.run(
            round_trips(database_url, args.round_trip_turns, args.concurrency)
        ),
    }
    if args.sdk:
        report["sdk_alone"] = sdk_profile(args.turns, args.concurrency)
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2))
    for side in ("profile", "sdk_alone")[: 1 + args.sdk]:
        _print(side, report[side], args)
    trips = report["round_trips"]
    print(f"round trips to PostgreSQL per turn: {trips['per_turn']}")
    for statement, count in trips["by_statement"].items():
        print(f"  {count:6.2f}  {statement}")


if __name__ == "__main__":
    main()
