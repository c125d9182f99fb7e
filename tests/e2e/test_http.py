"""`rmcp_http` driven by two concurrent MCP streamable HTTP clients (official Python SDK): each
client's events carry exactly the `mcp-session-id` that client was given, and SIGTERM stops the
server cleanly after it delivered every event."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, Implementation

from e2e_support import (
    TOKEN,
    Expectations,
    Receiver,
    Row,
    assert_exactly_one_event_per_call,
    check_row_invariants,
    pump_lines,
    utc_now,
)

SESSION_HEADER = "mcp-session-id"
SLOW_ECHO_DELAY_MS = 300
STOP_TIMEOUT_S = 5.0


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class HttpServer:
    """`rmcp_http PORT`, configured by TB_API_URL and TB_WRITE_TOKEN only; its stderr is read
    from a thread; started when it announced its URL."""

    def __init__(self, binary: Path, receiver_url: str, workdir: Path, startup_timeout: float = 10.0) -> None:
        self.port = free_loopback_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self._cond = threading.Condition()
        self._stderr: list[str] = []
        self._stdout_log = open(workdir / "server-stdout.log", "w+")
        self.proc = subprocess.Popen(
            [str(binary), str(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=self._stdout_log,
            stderr=subprocess.PIPE,
            text=True,
            cwd=workdir,  # no .env there
            env={"TB_API_URL": receiver_url, "TB_WRITE_TOKEN": TOKEN},
        )
        self._reader = threading.Thread(target=self._read_stderr, name="rmcp_http-stderr", daemon=True)
        self._reader.start()
        try:
            self._await_ready(startup_timeout)
        except BaseException:
            self.kill()
            raise

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        pump_lines(self.proc.stderr, self._stderr, self._cond)

    def _await_ready(self, timeout: float) -> None:
        banner = f"listening on {self.url}"
        deadline = time.monotonic() + timeout
        with self._cond:
            while banner not in self._stderr:
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(
                        f"rmcp_http exited ({self.proc.returncode}) before listening\n{self.stderr}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"rmcp_http did not print {banner!r} within {timeout}s\n{self.stderr}"
                    )
                self._cond.wait(min(remaining, 0.2))

    @property
    def stderr(self) -> str:
        with self._cond:
            return "\n".join(self._stderr)

    @property
    def stdout(self) -> str:
        self._stdout_log.seek(0)
        return self._stdout_log.read()

    def terminate(self, timeout: float) -> int | None:
        """SIGTERM, then the exit status, or None when it is still running after `timeout`."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self._reader.join(timeout=5)
        self._stdout_log.close()


@pytest.fixture
def http_server(http_server_bin: Path, receiver: Receiver, tmp_path: Path) -> Iterator[HttpServer]:
    workdir = tmp_path / "server"
    workdir.mkdir()
    server = HttpServer(http_server_bin, receiver.url, workdir)
    try:
        yield server
    finally:
        server.kill()


def texts(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


@dataclass
class Client:
    """One MCP client: what it declares, the session ids it was given and sent, its calls."""

    name: str
    version: str
    assigned: list[str] = field(default_factory=list)  # `mcp-session-id` on the server's responses
    sent: list[str] = field(default_factory=list)  # `mcp-session-id` on its own requests
    calls: Expectations = field(init=False)

    def __post_init__(self) -> None:
        self.calls = Expectations(client=(self.name, self.version))

    @property
    def session_id(self) -> str:
        ids = set(self.assigned)
        assert len(ids) == 1, f"{self.name} was given {len(ids)} session ids: {ids}"
        return ids.pop()


async def client_a(session: ClientSession, calls: Expectations) -> None:
    result = await session.call_tool("add", {"a": 20, "b": 22})
    assert not result.is_error and texts(result) == "42", result
    calls.expect("add(20, 22)", "tool", "add", "ok")

    result = await session.call_tool("divide", {"a": 1, "b": 0})
    assert result.is_error and texts(result) == "division by zero", result
    calls.expect("divide(1, 0)", "tool", "divide", "error", error="division by zero")

    prompt = await session.get_prompt("greet", {"name": "Grace"})
    assert "Grace" in prompt.messages[0].content.text, prompt
    calls.expect("greet(Grace)", "prompt", "greet", "ok")

    contents = (await session.read_resource("mem://readme")).contents
    assert contents[0].text, contents
    calls.expect("read mem://readme", "resource", "mem://readme", "ok")

    with pytest.raises(MCPError) as caught:
        await session.call_tool("lookup", {"key": "zig"})
    assert "unknown key: zig" in caught.value.message, caught.value
    calls.expect("lookup(zig)", "tool", "lookup", "error", error=None, error_contains="unknown key: zig")


async def client_b(session: ClientSession, calls: Expectations) -> None:
    result = await session.call_tool("lookup", {"key": "python"})
    assert not result.is_error and texts(result), result
    calls.expect("lookup(python)", "tool", "lookup", "ok")

    prompt = await session.get_prompt("summarize", {"topic": "borrowing"})
    assert "borrowing" in prompt.messages[0].content.text, prompt
    calls.expect("summarize(borrowing)", "prompt", "summarize", "ok")

    contents = (await session.read_resource("mem://config")).contents
    assert contents[0].text, contents
    calls.expect("read mem://config", "resource", "mem://config", "ok")

    with pytest.raises(MCPError) as caught:
        await session.read_resource("mem://missing")
    calls.expect(
        "read mem://missing",
        "resource",
        "mem://missing",
        "error",
        error=None,
        error_contains=caught.value.message,
    )

    result = await session.call_tool("add", {"a": "x", "b": 1})
    assert result.is_error and "deserializ" in texts(result).lower(), result
    calls.expect("add(x, 1)", "tool", "add", "error", error=texts(result))


async def run_client(
    url: str,
    client: Client,
    script: Callable[[ClientSession, Expectations], Awaitable[None]],
    ready: anyio.Event,
    other_ready: anyio.Event,
) -> None:
    async def on_request(request: httpx2.Request) -> None:
        if sid := request.headers.get(SESSION_HEADER):
            client.sent.append(sid)

    async def on_response(response: httpx2.Response) -> None:
        if sid := response.headers.get(SESSION_HEADER):
            client.assigned.append(sid)

    http = httpx2.AsyncClient(
        trust_env=False,  # loopback only: no proxy from the environment
        timeout=httpx2.Timeout(10.0, read=30.0),
        event_hooks={"request": [on_request], "response": [on_response]},
    )
    async with http, streamable_http_client(url, http_client=http) as (read, write):
        async with ClientSession(
            read, write, client_info=Implementation(name=client.name, version=client.version)
        ) as session:
            await session.initialize()
            tools = {tool.name for tool in (await session.list_tools()).tools}
            assert "slow_echo" in tools, tools
            # Both sessions are open before either calls anything; their slow calls overlap.
            ready.set()
            await other_ready.wait()
            text = f"from {client.name}"
            result = await session.call_tool("slow_echo", {"text": text, "delay_ms": SLOW_ECHO_DELAY_MS})
            assert not result.is_error and texts(result) == text, result
            client.calls.expect("slow_echo", "tool", "slow_echo", "ok", min_duration_ms=SLOW_ECHO_DELAY_MS)
            await script(session, client.calls)


def overlap(first: Row, second: Row) -> bool:
    def span(row: Row) -> tuple[float, float]:
        start = row.started_at().timestamp()
        return start, start + row.duration_ms / 1000

    (a0, a1), (b0, b1) = span(first), span(second)
    return a0 < b1 and b0 < a1


def test_http_two_concurrent_sessions(receiver: Receiver, http_server: HttpServer, version: str) -> None:
    clients = [Client("e2e-client-a", "1.0.0"), Client("e2e-client-b", "2.0.0")]

    async def run() -> None:
        ready = [anyio.Event(), anyio.Event()]
        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                group.start_soon(run_client, http_server.url, clients[0], client_a, ready[0], ready[1])
                group.start_soon(run_client, http_server.url, clients[1], client_b, ready[1], ready[0])

    started = utc_now()
    anyio.run(run)

    status = http_server.terminate(STOP_TIMEOUT_S)
    finished = utc_now()
    assert status is not None, (
        f"rmcp_http still running {STOP_TIMEOUT_S}s after SIGTERM\n{http_server.stderr}"
    )
    assert status == 0, f"rmcp_http exited with {status} after SIGTERM\n{http_server.stderr}"
    assert http_server.stdout == "", f"rmcp_http wrote to stdout: {http_server.stdout!r}"

    ids = [client.session_id for client in clients]
    assert ids[0] != ids[1], f"two clients, one session id: {ids}"
    for client, sid in zip(clients, ids):
        assert client.sent and set(client.sent) == {sid}, (
            f"{client.name} sent {set(client.sent)}, was given {sid}"
        )
        for expected in client.calls.items:
            expected.session = sid

    expected = [item for client in clients for item in client.calls.items]
    receiver.wait_for(len(expected), timeout=5)
    rows = receiver.settle()
    assert not receiver.malformed, receiver.describe()
    assert not receiver.rejections, receiver.describe()

    events = check_row_invariants(rows, version, (started, finished))
    assert_exactly_one_event_per_call(expected, rows)
    assert {row.session for row in rows} == set(ids), receiver.describe()

    slow = [row for row in rows if row.name == "slow_echo"]
    assert len(slow) == 2 and overlap(*slow), (
        f"the two sessions did not run concurrently: {[r.short() for r in slow]}"
    )

    print(
        f"\nhttp: {len(expected)} calls, {events} events checked "
        f"(2 sessions: {ids[0]} {len(clients[0].calls)} calls, {ids[1]} {len(clients[1].calls)} calls)"
    )
