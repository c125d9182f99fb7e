"""`rmcp_http` driven by MCP streamable HTTP clients (official Python SDK), every request
recorded by `mcp_analytics::rmcp::instrument!`:

- two concurrent sessions: each client's rows (one per request and notification it sent, its
  session's start and end) carry exactly the `mcp-session-id` that client was given, its own
  client and the negotiated protocol, and SIGTERM stops the server cleanly after it delivered
  every row;
- `--stateless`: no sessions, so every row's session is empty, no session rows, and only the
  `initialize` row names the client (no later request says who sent it).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
import httpx2
import pytest
from mcp import ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.types import INVALID_PARAMS, REQUEST_TIMEOUT, CallToolResult, Implementation

from e2e_support import (
    CRASH_MESSAGE,
    HttpServer,
    IGNORED,
    PRESENT,
    Expectations,
    Receiver,
    Row,
    SentLog,
    assert_rows_as_expected,
    await_rows,
    check_listings,
    check_row_invariants,
    contains,
    mismatch_report,
    utc_now,
)

SESSION_HEADER = "mcp-session-id"
SLOW_ECHO_DELAY_MS = 300
STOP_TIMEOUT_S = 5.0
# The crash tool never answers; how long to wait for the answer that must not come.
CRASH_TIMEOUT_S = 1.5


def texts(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


@dataclass
class Client:
    """One MCP client: what it declares, the session ids it was given and sent, its calls."""

    name: str
    version: str
    stateless: bool = False
    assigned: list[str] = field(default_factory=list)  # `mcp-session-id` on the server's responses
    sent: list[str] = field(default_factory=list)  # `mcp-session-id` on its own requests
    listed_tools: list[str] = field(default_factory=list)
    calls: Expectations = field(init=False)

    def __post_init__(self) -> None:
        self.calls = Expectations(
            client=(self.name, self.version),
            transport="tcp",
            sessions=not self.stateless,
            notifications=not self.stateless,
            client_only_on_initialize=self.stateless,
        )

    @property
    def session_id(self) -> str:
        ids = set(self.assigned)
        assert len(ids) == 1, f"{self.name} was given {len(ids)} session ids: {ids}"
        return ids.pop()


def tool(calls: Expectations, label: str, name: str, outcome: str, **kwargs) -> None:
    """A tools/call just made: `#[mcp_tool]` on call_tool joins its row."""
    calls.call(label, "tool", name, outcome, func_name="call_tool", handler_duration_ms=PRESENT, **kwargs)


async def client_a(session: ClientSession, calls: Expectations) -> None:
    result = await session.call_tool("add", {"a": 20, "b": 22})
    assert not result.is_error and texts(result) == "42", result
    tool(calls, "add(20, 22)", "add", "ok")

    result = await session.call_tool("divide", {"a": 1, "b": 0})
    assert result.is_error and texts(result) == "division by zero", result
    tool(calls, "divide(1, 0)", "divide", "error", error="division by zero", error_type="tool_error")

    prompt = await session.get_prompt("greet", {"name": "Grace"})
    assert "Grace" in prompt.messages[0].content.text, prompt
    calls.call("greet(Grace)", "prompt", "greet", "ok", func_name="greet", handler_duration_ms=PRESENT)

    contents = (await session.read_resource("mem://readme")).contents
    assert contents[0].text, contents
    calls.call("read mem://readme", "resource", "mem://readme", "ok", func_name="read_resource", handler_duration_ms=PRESENT)

    with pytest.raises(MCPError) as caught:
        await session.call_tool("lookup", {"key": "zig"})
    assert caught.value.code == INVALID_PARAMS and "unknown key: zig" in caught.value.message, caught.value
    tool(calls, "lookup(zig)", "lookup", "error", error=contains("unknown key: zig"), error_type="-32602")

    # rmcp answers an unknown tool with a JSON-RPC error -32602.
    with pytest.raises(MCPError) as caught:
        await session.call_tool("no_such_tool", {})
    assert caught.value.code == INVALID_PARAMS, caught.value
    tool(calls, "no_such_tool()", "no_such_tool", "error", error=contains(caught.value.message), error_type="-32602")

    await session.send_ping()
    calls.request("ping", "ping")


async def client_b(session: ClientSession, calls: Expectations) -> None:
    result = await session.call_tool("lookup", {"key": "python"})
    assert not result.is_error and texts(result), result
    tool(calls, "lookup(python)", "lookup", "ok")

    prompt = await session.get_prompt("summarize", {"topic": "borrowing"})
    assert "borrowing" in prompt.messages[0].content.text, prompt
    calls.call("summarize(borrowing)", "prompt", "summarize", "ok", func_name="summarize", handler_duration_ms=PRESENT)

    contents = (await session.read_resource("mem://config")).contents
    assert contents[0].text, contents
    calls.call("read mem://config", "resource", "mem://config", "ok", func_name="read_resource", handler_duration_ms=PRESENT)

    with pytest.raises(MCPError) as caught:
        await session.read_resource("mem://missing")
    calls.call(
        "read mem://missing", "resource", "mem://missing", "error", func_name="read_resource",
        handler_duration_ms=PRESENT, error=contains(caught.value.message), error_type=str(caught.value.code),
    )

    # rmcp answers arguments that do not deserialize with an isError result, not a JSON-RPC error.
    result = await session.call_tool("add", {"a": "x", "b": 1})
    assert result.is_error and "deserializ" in texts(result).lower(), result
    tool(calls, "add(x, 1)", "add", "error", error=texts(result), error_type="tool_error")

    await crash(session, calls)


async def crash(session: ClientSession, calls: Expectations) -> None:
    """A panicking tool: no answer (the SDK gives up, and sends notifications/cancelled)."""
    with pytest.raises(MCPError) as caught:
        await session.call_tool("crash", {}, read_timeout_seconds=CRASH_TIMEOUT_S)
    assert caught.value.code == REQUEST_TIMEOUT, f"crash was answered instead of timing out: {caught.value!r}"
    tool(calls, "crash()", "crash", "panic", error_type="panic", error=CRASH_MESSAGE)
    # The server goes on serving. The SDK posted notifications/cancelled before this request
    # (one message at a time), so the session has it before the client ends the session.
    await session.send_ping()
    calls.request("ping after the crash", "ping")


async def run_client(
    url: str,
    client: Client,
    script: Callable[[ClientSession, Expectations], Awaitable[None]],
    ready: anyio.Event | None = None,
    other_ready: anyio.Event | None = None,
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
    calls = client.calls
    async with http, streamable_http_client(url, http_client=http) as (read, write):
        calls.sent = SentLog(write)
        async with ClientSession(
            read, calls.sent, client_info=Implementation(name=client.name, version=client.version)
        ) as session:
            initialized = await session.initialize()
            calls.protocol = initialized.protocol_version
            calls.request("initialize", "initialize")
            client.listed_tools = [tool.name for tool in (await session.list_tools()).tools]
            assert "slow_echo" in client.listed_tools, client.listed_tools
            # Which of the clients' listings is the process's first, that names what it listed,
            # is a race: check_listings checks there is exactly one.
            calls.request("tools/list", "tools/list", listed=IGNORED)
            if ready is not None and other_ready is not None:
                # Both sessions are open before either calls anything; their slow calls overlap.
                ready.set()
                await other_ready.wait()
            text = f"from {client.name}"
            result = await session.call_tool("slow_echo", {"text": text, "delay_ms": SLOW_ECHO_DELAY_MS})
            assert not result.is_error and texts(result) == text, result
            tool(calls, "slow_echo", "slow_echo", "ok", min_duration_ms=SLOW_ECHO_DELAY_MS)
            await script(session, calls)


def overlap(first: Row, second: Row) -> bool:
    def span(row: Row) -> tuple[float, float]:
        start = row.started_at().timestamp()
        return start, start + row.duration_ms / 1000

    (a0, a1), (b0, b1) = span(first), span(second)
    return a0 < b1 and b0 < a1


def stop_cleanly(server: HttpServer) -> None:
    """SIGTERM: the server closes its sessions, delivers what is queued, and exits 0."""
    status = server.terminate(STOP_TIMEOUT_S)
    assert status is not None, f"rmcp_http still running {STOP_TIMEOUT_S}s after SIGTERM\n{server.stderr}"
    assert status == 0, f"rmcp_http exited with {status} after SIGTERM\n{server.stderr}"
    assert server.stdout == "", f"rmcp_http wrote to stdout: {server.stdout!r}"


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
    stop_cleanly(http_server)
    finished = utc_now()

    ids = [client.session_id for client in clients]
    assert ids[0] != ids[1], f"two clients, one session id: {ids}"
    for client, sid in zip(clients, ids):
        assert client.sent and set(client.sent) == {sid}, (
            f"{client.name} sent {set(client.sent)}, was given {sid}"
        )
        client.calls.session = sid

    expected = {sid: client.calls.rows() for client, sid in zip(clients, ids)}
    rows = await_rows(receiver, [row for rows in expected.values() for row in rows])

    checked = check_row_invariants(rows, version, (started, finished))
    strays = [row.short() for row in rows if row.session not in ids]
    assert not strays, f"rows in neither client's session {ids}:\n" + "\n".join(strays)
    problems = []
    for client, sid in zip(clients, ids):
        problems += mismatch_report(expected[sid], [row for row in rows if row.session == sid], client.name)
    assert not problems, "\n".join(problems) + "\nrows received:\n" + "\n".join(f"  {r.short()}" for r in rows)
    assert clients[0].listed_tools == clients[1].listed_tools, [client.listed_tools for client in clients]
    check_listings(rows, {"tools/list": clients[0].listed_tools})

    slow = [row for row in rows if row.name == "slow_echo"]
    assert len(slow) == 2 and overlap(*slow), (
        f"the two sessions did not run concurrently: {[r.short() for r in slow]}"
    )

    print(
        f"\nhttp: {sum(map(len, expected.values()))} rows expected, {checked} rows checked "
        f"(2 sessions: {ids[0]} {len(expected[ids[0]])} rows, {ids[1]} {len(expected[ids[1]])} rows)"
    )


async def stateless_script(session: ClientSession, calls: Expectations) -> None:
    await client_a(session, calls)
    prompt = await session.get_prompt("summarize", {"topic": "lifetimes"})
    assert "lifetimes" in prompt.messages[0].content.text, prompt
    calls.call("summarize(lifetimes)", "prompt", "summarize", "ok", func_name="summarize", handler_duration_ms=PRESENT)
    await crash(session, calls)
    # The server goes on serving.
    result = await session.call_tool("add", {"a": 1, "b": 1})
    assert not result.is_error and texts(result) == "2", result
    tool(calls, "add(1, 1) after the crash", "add", "ok")


def test_http_stateless(receiver: Receiver, stateless_http_server: HttpServer, version: str) -> None:
    """`rmcp_http PORT --stateless`: every request is served on its own. No session (the
    column is empty on every row, no session rows); only `initialize` names the client."""
    client = Client("e2e-stateless", "0.9.0", stateless=True)

    async def run() -> None:
        with anyio.fail_after(30):
            await run_client(stateless_http_server.url, client, stateless_script)

    started = utc_now()
    anyio.run(run)
    stop_cleanly(stateless_http_server)
    finished = utc_now()

    assert not client.assigned and not client.sent, (
        f"a stateless server gave session ids {client.assigned}; the client sent {client.sent}"
    )
    client.calls.session = ""
    expected = client.calls.rows()
    rows = await_rows(receiver, expected)

    checked = check_row_invariants(rows, version, (started, finished))
    assert_rows_as_expected(expected, rows, client.name)
    check_listings(rows, {"tools/list": client.listed_tools})
    print(f"\nhttp stateless: {len(expected)} rows expected, {checked} rows checked, no session")
