"""Rows the crate really sent, in two batches, for the tests of the dashboard: a test that loads
them into the Tinybird project (on chdb) and checks every Grafana panel against counts computed
from these same rows needs rows no hand could have shaped, and a "before" and an "after" that
differ in known ways.

`produce_batches(workdir)` runs the example servers, driven by the official MCP Python SDK, each
batch delivering to a loopback Events API receiver of its own, and returns each row as the
receiver got it (`{"timestamp", "session", "level", "record"}`, `record` the JSON text sent):

- **first** ("before"): `rmcp_stdio` with the agent-facing options on (client `dash-stdio`
  1.0.0: every listing, `add` three times, `divide` by zero, `slow_echo`, the prompt `greet`,
  the resource `mem://readme`; every tool call states an intent and carries one conversation),
  then stateful `rmcp_http` (client `dash-http` 2.0.0: tools listed twice, `add`, `divide`).
  `lookup` is listed, never called; nothing panics.
- **second** ("after"): `rmcp_stdio` again (client `dash-stdio` 1.1.0, a new version: tools
  listed, `lookup` for the first time, ok and failing with -32602, the unknown tool
  `no_such_tool`, which rmcp rejects with -32602, `crash`, the first panic, then `add`), and
  `rmcp_http --stateless` (`dash-http` 2.0.0: tools listed, `add` and `lookup`, rows without a
  session).

Every client lists the tools before calling one: the SDK would otherwise list them itself
before checking the first successful result (its output-schema cache), a request the script
did not make.

Each server's rows are exactly those its client's requests, notifications and session must
produce (`Expectations`, as in test_stdio.py and test_http.py): a batch is returned only once
every one of them arrived and nothing else came. Every wait polls a condition and is bounded.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import INVALID_PARAMS, REQUEST_TIMEOUT, Implementation

from e2e_support import (
    expect_mcp_error,
    handle_of,
    texts,
    CRASH_MESSAGE,
    IGNORED,
    PRESENT,
    Expectations,
    ExpectedRow,
    HttpServer,
    Receiver,
    SentLog,
    all_matched,
    assert_rows_as_expected,
    contains,
    default_spool_roots,
    example_binary,
    server_env,
    spool_footprint,
    utc_now,
    workspace_binary,
)

STDIO_BEFORE = ("dash-stdio", "1.0.0")
STDIO_AFTER = ("dash-stdio", "1.1.0")
# The same HTTP client in both batches: the second batch's only new client is STDIO_AFTER.
HTTP_CLIENT = ("dash-http", "2.0.0")

# The stdio servers run with the wrapper's agent-facing options on, so that their tool calls
# carry `intent` and `conversation`. The HTTP servers run without: the stateless one would
# otherwise put each call in its conversation's session, and its rows must have none.
AGENT_OPTIONS = {"MCP_ANALYTICS_AGENT_OPTIONS": "1"}
SERVER_TOOLS = {"add", "divide", "lookup", "slow_echo", "crash"}
MISSING_TOOL = "get_more_tools"  # what the agent-facing options add to the listing
# The models that make some of the calls (`_meta`): one in both batches, one new in the second.
MODEL_BEFORE = "claude-sonnet-4"
MODEL_AFTER = "gpt-5"
INTENT_ADD = "Adding two numbers the user gave, to total their order"
INTENT_DIVIDE = "Dividing the total between the people the user named"
INTENT_ECHO = "Repeating the user's words back to check the connection"
INTENT_LOOKUP = "Looking up what a language is, to answer the user's question"
INTENT_OTHER = "Trying a tool the agent remembers from another server"
INTENT_CRASH = "Checking how the server copes with a failing tool"

SLOW_ECHO_DELAY_MS = 50
# The crash tool never answers: how long the client waits for the answer that must not come.
CRASH_TIMEOUT_S = 1.5
# Bounds: one client's whole script; a server's rows once it exited; a stopped HTTP server.
SCRIPT_TIMEOUT_S = 15.0
ROWS_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
SESSION_HEADER = "mcp-session-id"
# `bash -c SCRIPT wrapper SERVER STATUS_FILE`: runs the stdio server and writes its exit status
# once it is gone, which tells a server that exited by itself (and so flushed its rows) from
# one the SDK had to kill.
EXIT_STATUS_SCRIPT = '"$1"; echo "$?" > "$2"'


@dataclass(frozen=True)
class Batches:
    """The rows of each batch, in the order the receiver printed them (not in the order of
    their timestamps), each exactly as received: `{"timestamp": str, "session": str,
    "level": str, "record": str}`; and when (UTC) the first batch started and the second ended,
    which bound every row's timestamp."""

    first: list[dict]
    second: list[dict]
    started: datetime
    finished: datetime


def tool(calls: Expectations, label: str, name: str, outcome: str, **fields: object) -> None:
    """A tools/call just made: `#[mcp_tool]` on the demo server's call_tool joins its row."""
    calls.call(label, "tool", name, outcome, func_name="call_tool", handler_duration_ms=PRESENT, **fields)


async def list_tools(session: ClientSession, calls: Expectations, label: str) -> list[str]:
    """Lists the tools (which also fills the SDK's cache, so that no call lists them behind the
    script's back); which listing of a process names what it listed is the wrapper's business,
    checked by test_stdio.py."""
    names = [listed.name for listed in (await session.list_tools()).tools]
    assert SERVER_TOOLS <= set(names), names
    calls.request(label, "tools/list", listed=IGNORED)
    return names


# --------------------------------------------------------------------------------------------
# What each client does


async def stdio_before(session: ClientSession, calls: Expectations) -> None:
    """Lists everything, then calls the tools (never `lookup`, never `crash`) within one
    conversation, gets a prompt, reads a resource."""
    names = await list_tools(session, calls, "tools/list")
    assert set(names) == SERVER_TOOLS | {MISSING_TOOL}, names
    prompts = [prompt.name for prompt in (await session.list_prompts()).prompts]
    assert set(prompts) == {"greet", "summarize"}, prompts
    calls.request("prompts/list", "prompts/list", listed=IGNORED)
    resources = [str(resource.uri) for resource in (await session.list_resources()).resources]
    assert "mem://readme" in resources, resources
    calls.request("resources/list", "resources/list", listed=IGNORED)

    # The first call is given a handle; the others pass it back, so all share the conversation.
    handle: str | None = None
    for a, b in ((2, 3), (40, 2), (7, 35)):
        arguments: dict[str, object] = {"a": a, "b": b, "context": INTENT_ADD}
        if handle is not None:
            arguments["conversation_id"] = handle
        result = await session.call_tool("add", arguments)
        assert not result.is_error and texts(result)[0] == str(a + b), result
        handle = handle or handle_of(result)
        assert handle, f"no conversation handle on the first result: {result}"
        tool(calls, f"add({a}, {b})", "add", "ok", intent=INTENT_ADD, conversation=handle)

    in_conversation = {"conversation_id": handle}
    result = await session.call_tool("divide", {"a": 1, "b": 0, "context": INTENT_DIVIDE, **in_conversation})
    assert result.is_error and texts(result) == ["division by zero"], result
    tool(
        calls, "divide(1, 0)", "divide", "error", error="division by zero", error_type="tool_error",
        intent=INTENT_DIVIDE, conversation=handle,
    )

    echo = {"text": "hello", "delay_ms": SLOW_ECHO_DELAY_MS, "context": INTENT_ECHO, **in_conversation}
    result = await session.call_tool("slow_echo", echo, meta=invoked_by(MODEL_BEFORE))
    assert not result.is_error and texts(result) == ["hello"], result
    tool(
        calls, "slow_echo(hello)", "slow_echo", "ok", min_duration_ms=SLOW_ECHO_DELAY_MS,
        intent=INTENT_ECHO, conversation=handle, model=MODEL_BEFORE,
    )

    prompt = await session.get_prompt("greet", {"name": "Ada"})
    assert "Ada" in prompt.messages[0].content.text, prompt
    calls.call("greet(Ada)", "prompt", "greet", "ok", func_name="greet", handler_duration_ms=PRESENT)

    contents = (await session.read_resource("mem://readme")).contents
    assert len(contents) == 1 and contents[0].text, contents
    calls.call("read mem://readme", "resource", "mem://readme", "ok", func_name="read_resource", handler_duration_ms=PRESENT)


def invoked_by(model: str) -> dict[str, object]:
    """A request's `_meta` naming the model that made the call (SEP-2817), as an agent's
    client sends it: the row's `model`."""
    return {"io.modelcontextprotocol/aiInvocation": {"model": model}}


async def http_before(session: ClientSession, calls: Expectations) -> None:
    """Lists the tools (`lookup` among them), calls `add` and `divide`, lists them again."""
    await list_tools(session, calls, "tools/list")
    result = await session.call_tool("add", {"a": 20, "b": 22})
    assert not result.is_error and texts(result) == ["42"], result
    tool(calls, "add(20, 22)", "add", "ok")
    result = await session.call_tool("divide", {"a": 9, "b": 3})
    assert not result.is_error and texts(result) == ["3"], result
    tool(calls, "divide(9, 3)", "divide", "ok")
    await list_tools(session, calls, "tools/list again")


async def stdio_after(session: ClientSession, calls: Expectations) -> None:
    """`lookup` for the first time (ok, then a JSON-RPC error from the tool), a tool the server
    does not have, the panicking `crash`, then `add`: the server goes on serving."""
    await list_tools(session, calls, "tools/list")
    result = await session.call_tool("lookup", {"key": "rust", "context": INTENT_LOOKUP})
    assert not result.is_error and texts(result)[0].startswith("A language"), result
    handle = handle_of(result)
    assert handle, f"no conversation handle on the first result: {result}"
    tool(calls, "lookup(rust)", "lookup", "ok", intent=INTENT_LOOKUP, conversation=handle)
    in_conversation = {"conversation_id": handle}

    error = await expect_mcp_error(session.call_tool("lookup", {"key": "cobol", "context": INTENT_LOOKUP, **in_conversation}))
    assert error.code == INVALID_PARAMS and "unknown key: cobol" in error.message, error
    tool(calls, "lookup(cobol)", "lookup", "error", error=contains("unknown key: cobol"), error_type="-32602")

    # rmcp answers a tool it does not have with a JSON-RPC error -32602.
    error = await expect_mcp_error(session.call_tool("no_such_tool", {"context": INTENT_OTHER, **in_conversation}))
    assert error.code == INVALID_PARAMS, error
    tool(calls, "no_such_tool()", "no_such_tool", "error", error=contains(error.message), error_type="-32602")

    # No answer: the SDK gives up and sends notifications/cancelled (a row of its own).
    error = await expect_mcp_error(
        session.call_tool("crash", {"context": INTENT_CRASH, **in_conversation}, read_timeout_seconds=CRASH_TIMEOUT_S)
    )
    assert error.code == REQUEST_TIMEOUT, f"crash was answered instead of timing out: {error!r}"
    tool(calls, "crash()", "crash", "panic", error_type="panic", error=CRASH_MESSAGE)

    arguments = {"a": 1, "b": 2, "context": INTENT_ADD, **in_conversation}
    result = await session.call_tool("add", arguments, meta=invoked_by(MODEL_AFTER))
    assert not result.is_error and texts(result) == ["3"], result
    tool(calls, "add(1, 2) after the crash", "add", "ok", intent=INTENT_ADD, conversation=handle, model=MODEL_AFTER)


async def stateless_after(session: ClientSession, calls: Expectations) -> None:
    """`add` and `lookup` once each, every request on its own."""
    await list_tools(session, calls, "tools/list")
    result = await session.call_tool("add", {"a": 5, "b": 8}, meta=invoked_by(MODEL_BEFORE))
    assert not result.is_error and texts(result) == ["13"], result
    tool(calls, "add(5, 8)", "add", "ok", model=MODEL_BEFORE)
    result = await session.call_tool("lookup", {"key": "python"})
    assert not result.is_error and texts(result)[0].startswith("A language"), result
    tool(calls, "lookup(python)", "lookup", "ok")


Script = Callable[[ClientSession, Expectations], Awaitable[None]]


# --------------------------------------------------------------------------------------------
# Running a server with its client


async def drive(read, write, client: tuple[str, str], calls: Expectations, script: Script) -> None:
    """One client session: the handshake (the SDK's, 2025-11-25), then `script`; leaving it
    ends the session."""
    calls.sent = SentLog(write)
    info = Implementation(name=client[0], version=client[1])
    async with ClientSession(read, calls.sent, client_info=info) as session:
        initialized = await session.initialize()
        calls.protocol = initialized.protocol_version
        calls.request("initialize", "initialize")
        await script(session, calls)


def run_stdio(binary: Path, receiver: Receiver, workdir: Path, client: tuple[str, str], script: Script) -> list[ExpectedRow]:
    """`rmcp_stdio` (agent-facing options on) driven by `script` until the client closes its
    stdin; returns the rows the server must have delivered, once it exited by itself (and so
    flushed them at exit)."""
    bash = shutil.which("bash")
    assert bash, "bash is needed to learn the stdio server's exit status"
    status_file = workdir / "exit-status"
    params = StdioServerParameters(
        command=bash,
        args=["-c", EXIT_STATUS_SCRIPT, "stdio-status", str(binary), str(status_file)],
        env=server_env(receiver.url, workdir / "spool", AGENT_OPTIONS),
        cwd=workdir,  # no .env there
    )
    calls = Expectations(client=client, transport="pipe")

    async def run() -> None:
        with open(workdir / "server-stderr.log", "w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write):
                with anyio.fail_after(SCRIPT_TIMEOUT_S):
                    await drive(read, write, client, calls, script)
        # Leaving stdio_client closed the server's stdin and waited (2 s at most) for it to exit.

    anyio.run(run)
    stderr = (workdir / "server-stderr.log").read_text(errors="replace")
    assert status_file.exists(), f"rmcp_stdio did not exit when its stdin closed (the SDK killed it)\n{stderr}"
    status = status_file.read_text().strip()
    assert status == "0", f"rmcp_stdio exited with status {status}\n{stderr}"
    return calls.rows()


def run_http(
    binary: Path, receiver: Receiver, workdir: Path, client: tuple[str, str], script: Script, stateless: bool
) -> list[ExpectedRow]:
    """`rmcp_http` (`--stateless` or not) driven by `script`; the client ends its session, then
    SIGTERM stops the server, which delivers what is queued and exits 0. Returns the rows the
    server must have delivered, in the session the client was given (none when stateless)."""
    server = HttpServer(binary, receiver.url, workdir, stateless=stateless)
    calls = Expectations(
        client=client,
        transport="tcp",
        sessions=not stateless,
        # rmcp's stateless transport answers notifications 202 and drops them: no row.
        notifications=not stateless,
        client_only_on_initialize=stateless,
    )
    assigned: set[str] = set()  # `mcp-session-id` on the server's responses
    sent: set[str] = set()  # and on the client's requests

    async def on_request(request: httpx2.Request) -> None:
        if sid := request.headers.get(SESSION_HEADER):
            sent.add(sid)

    async def on_response(response: httpx2.Response) -> None:
        if sid := response.headers.get(SESSION_HEADER):
            assigned.add(sid)

    async def run() -> None:
        http = httpx2.AsyncClient(
            trust_env=False,  # loopback only: no proxy from the environment
            timeout=httpx2.Timeout(10.0, read=30.0),
            event_hooks={"request": [on_request], "response": [on_response]},
        )
        async with http, streamable_http_client(server.url, http_client=http) as (read, write):
            with anyio.fail_after(SCRIPT_TIMEOUT_S):
                await drive(read, write, client, calls, script)

    try:
        anyio.run(run)
        status = server.terminate(STOP_TIMEOUT_S)
        assert status is not None, f"rmcp_http still running {STOP_TIMEOUT_S}s after SIGTERM\n{server.stderr}"
        assert status == 0, f"rmcp_http exited with {status} after SIGTERM\n{server.stderr}"
    finally:
        server.kill()
    if stateless:
        assert not assigned and not sent, f"a stateless server gave session ids {assigned}; the client sent {sent}"
        calls.session = ""
    else:
        assert len(assigned) == 1 and sent == assigned, f"given session ids {assigned}, sent {sent}"
        (calls.session,) = assigned
    return calls.rows()


Run = Callable[[Receiver, Path], list[ExpectedRow]]


def run_batch(name: str, workdir: Path, receiver_bin: Path, servers: list[tuple[str, Run]]) -> list[dict]:
    """Runs `servers` one after the other, all delivering to one new receiver; after each has
    exited, waits until every row it must have delivered arrived, and at the end until nothing
    more comes. Returns the rows received, which must be exactly those expected."""
    workdir.mkdir(parents=True)
    (workdir / "receiver").mkdir()
    receiver = Receiver(receiver_bin, workdir / "receiver")
    try:
        expected: list[ExpectedRow] = []
        for label, run in servers:
            server_dir = workdir / label
            server_dir.mkdir()  # its own spool, its logs
            expected += run(receiver, server_dir)
            try:
                receiver.wait_for(all_matched(expected), timeout=ROWS_TIMEOUT_S)
                continue
            except AssertionError:
                pass
            # Not all arrived in time: which rows are missing, and which came instead.
            assert_rows_as_expected(expected, receiver.rows, f"{name}, {ROWS_TIMEOUT_S}s after {label} exited")
        rows = receiver.settle()
        assert not receiver.malformed and not receiver.rejections, receiver.describe()
        assert_rows_as_expected(expected, rows, name)
        return [json.loads(row.raw) for row in rows]
    finally:
        receiver.stop()


def produce_batches(workdir: Path) -> Batches:
    """Runs both batches (see the module's docstring) under `workdir`, each server with its own
    spool there; returns their rows as received. Fails, naming what is missing or unexpected,
    unless each batch's rows are exactly what its clients' requests must have produced."""
    receiver_bin = workspace_binary("mcp-analytics-receiver")
    stdio, http = example_binary("rmcp_stdio"), example_binary("rmcp_http")
    started = utc_now()
    first = run_batch(
        "before",
        workdir / "before",
        receiver_bin,
        [
            ("stdio", lambda receiver, where: run_stdio(stdio, receiver, where, STDIO_BEFORE, stdio_before)),
            ("http", lambda receiver, where: run_http(http, receiver, where, HTTP_CLIENT, http_before, stateless=False)),
        ],
    )
    second = run_batch(
        "after",
        workdir / "after",
        receiver_bin,
        [
            ("stdio", lambda receiver, where: run_stdio(stdio, receiver, where, STDIO_AFTER, stdio_after)),
            ("stateless", lambda receiver, where: run_http(http, receiver, where, HTTP_CLIENT, stateless_after, stateless=True)),
        ],
    )
    return Batches(first, second, started, utc_now())


@pytest.fixture(scope="session")
def dashboard_batches(tmp_path_factory: pytest.TempPathFactory) -> Batches:
    """Both batches, produced once per test session. conftest.py imports it, which makes it one
    fixture for the whole suite: a test module that imported it as well would have its own, and
    run the servers again. Set up before any test's own fixtures, it is outside conftest.py's
    check that no server spooled to the user's cache: it checks that itself."""
    roots = default_spool_roots()
    footprint = spool_footprint(roots)
    batches = produce_batches(tmp_path_factory.mktemp("dashboard-rows"))
    assert spool_footprint(roots) == footprint, "a server of the dashboard's batches used its default spool"
    return batches
