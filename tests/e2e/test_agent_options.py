"""The wrapper's agent-facing options (`intent_argument`, `conversations`,
`missing_capability_tool`), turned on in the example servers by `MCP_ANALYTICS_AGENT_OPTIONS=1`,
driven by the official MCP Python SDK over stdio and over stateless streamable HTTP:

- the listing advertises `context` (required) and `conversation_id` (optional) on every tool, and
  the extra tool `get_more_tools`;
- `lookup`, which fails on any argument it does not declare, succeeds with both: the server never
  sees them;
- the first call's result hands out a conversation handle, the calls that pass it back share the
  row's `conversation` (and, on stateless HTTP, its `session`), and a made-up handle is ignored;
- the rows record the stated intent, and the report of a missing capability as a row of its own
  kind, never a call of a tool.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import httpx2
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import Implementation

from e2e_support import (
    handle_of,
    texts,
    PRESENT,
    Check,
    Expectations,
    HttpServer,
    Receiver,
    Row,
    SentLog,
    assert_rows_as_expected,
    await_rows,
    check_row_invariants,
    server_env,
    utc_now,
)

AGENT_OPTIONS = {"MCP_ANALYTICS_AGENT_OPTIONS": "1"}
SERVER_TOOLS = {"add", "divide", "lookup", "slow_echo", "crash"}
MISSING_TOOL = "get_more_tools"
MAX_INTENT_LEN = 512  # mcp_analytics::limits::MAX_INTENT_LEN
# The intents below carry an email address, which redaction takes out of the rows.
EMAIL = "ada@example.com"
INTENT = f"Looking up what a language is, to answer a question from a user at {EMAIL}"
REPORT = f"A tool that converts between currencies, which a user at {EMAIL} asked for"


def intent(says: str) -> Check:
    """The intent recorded: what the agent said, bounded, without the email address (redacted)."""

    def recorded(value: object) -> bool:
        if not (isinstance(value, str) and says in value and len(value.encode()) <= MAX_INTENT_LEN):
            return False
        return EMAIL not in value

    return Check(f"<intent saying {says!r}>", recorded)


def check_listing(tools) -> list[str]:
    """Every server tool advertises the two arguments; the extra tool is last. Returns the
    server's own names, in order (what the listing's row records)."""
    names = [tool.name for tool in tools]
    assert set(names) == SERVER_TOOLS | {MISSING_TOOL} and names[-1] == MISSING_TOOL, names
    for tool in tools:
        schema = tool.input_schema
        properties, required = schema.get("properties", {}), schema.get("required", [])
        assert properties["context"]["type"] == "string" and "context" in required, (tool.name, schema)
        assert properties["conversation_id"]["type"] == "string", (tool.name, schema)
        assert "conversation_id" not in required, (tool.name, schema)
    assert "15 to 25 words" in tools[0].input_schema["properties"]["context"]["description"]
    return names[:-1]


async def converse(session: ClientSession, calls: Expectations) -> tuple[str, str]:
    """Lists, calls `lookup` (which refuses arguments it does not declare) without a handle, then
    `add` and the extra tool with the handle it was given, then `lookup` with a made-up handle.
    Returns the handle and the one the made-up handle was replaced with."""
    listed = check_listing((await session.list_tools()).tools)
    calls.request("tools/list", "tools/list", listed=listed)

    def tool(label: str, name: str, **extra: object) -> None:
        calls.call(label, "tool", name, "ok", func_name="call_tool", handler_duration_ms=PRESENT, **extra)

    result = await session.call_tool("lookup", {"key": "rust", "context": INTENT})
    assert not result.is_error, result
    handle = handle_of(result)
    assert handle and texts(result)[0].startswith("A language"), result
    tool("lookup(rust) with context", "lookup", intent=intent("Looking up what a language is"), conversation=handle)

    again = {"a": 2, "b": 3, "context": "Adding two numbers the user gave", "conversation_id": handle}
    result = await session.call_tool("add", again)
    assert not result.is_error and texts(result) == ["5"], f"no new handle once passed back: {result}"
    tool("add(2, 3) with the handle", "add", intent="Adding two numbers the user gave", conversation=handle)

    result = await session.call_tool(MISSING_TOOL, {"context": REPORT, "conversation_id": handle})
    assert not result.is_error and "no other tools" in texts(result)[0], result
    calls.missing_capability("get_more_tools(report)", MISSING_TOOL, intent=intent("converts between currencies"), conversation=handle)

    made_up = {"key": "python", "context": "Looking up another language", "conversation_id": "conv-1"}
    result = await session.call_tool("lookup", made_up)
    assert not result.is_error, result
    replaced = handle_of(result)
    assert replaced and replaced != handle, f"a made-up handle is replaced: {result}"
    tool("lookup(python) with conv-1", "lookup", intent="Looking up another language", conversation=replaced)
    return handle, replaced


def test_stdio_agent_options(receiver: Receiver, stdio_server_bin: Path, version: str, tmp_path: Path) -> None:
    workdir = tmp_path / "server"
    workdir.mkdir()
    params = StdioServerParameters(
        command=str(stdio_server_bin),
        env=server_env(receiver.url, workdir / "spool", AGENT_OPTIONS),
        cwd=workdir,
    )
    calls = Expectations(client=("e2e-agent-stdio", "1.0.0"), transport="pipe")
    handles: list[str] = []

    async def run() -> None:
        with open(tmp_path / "server-stderr.log", "w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write):
                calls.sent = SentLog(write)
                info = Implementation(name=calls.client[0], version=calls.client[1])
                async with ClientSession(read, calls.sent, client_info=info) as session:
                    with anyio.fail_after(30):
                        initialized = await session.initialize()
                        calls.protocol = initialized.protocol_version
                        calls.request("initialize", "initialize")
                        handles.extend(await converse(session, calls))

    started = utc_now()
    anyio.run(run)
    finished = utc_now()

    expected = calls.rows()
    rows = await_rows(receiver, expected)
    check_row_invariants(rows, version, (started, finished))
    assert_rows_as_expected(expected, rows, "stdio, agent options")
    sessions = {row.session for row in rows}
    assert len(sessions) == 1 and not sessions & set(handles), f"a pipe keeps its session: {sessions}"
    asked = [row for row in rows if row.kind in ("tool", "missing_capability")]
    assert all("conversation" in row.record for row in asked), [row.short() for row in asked]


def test_stateless_http_conversation_is_the_session(
    receiver: Receiver, http_server_bin: Path, version: str, tmp_path: Path
) -> None:
    workdir = tmp_path / "server"
    workdir.mkdir()
    server = HttpServer(http_server_bin, receiver.url, workdir, stateless=True, env=AGENT_OPTIONS)
    calls = Expectations(
        client=("e2e-agent-http", "1.0.0"),
        transport="tcp",
        sessions=False,
        notifications=False,
        client_only_on_initialize=True,
    )
    handles: list[str] = []

    async def run() -> None:
        http = httpx2.AsyncClient(trust_env=False, timeout=httpx2.Timeout(10.0, read=30.0))
        async with http, streamable_http_client(server.url, http_client=http) as (read, write):
            calls.sent = SentLog(write)
            info = Implementation(name=calls.client[0], version=calls.client[1])
            async with ClientSession(read, calls.sent, client_info=info) as session:
                with anyio.fail_after(30):
                    initialized = await session.initialize()
                    calls.protocol = initialized.protocol_version
                    calls.request("initialize", "initialize")
                    handles.extend(await converse(session, calls))

    started = utc_now()
    try:
        anyio.run(run)
    finally:
        status = server.terminate(5.0)
        server.kill()
    assert status == 0, f"rmcp_http exited with {status}\n{server.stderr}"
    finished = utc_now()

    expected = calls.rows()
    rows = await_rows(receiver, expected)
    check_row_invariants(rows, version, (started, finished))
    assert_rows_as_expected(expected, rows, "stateless http, agent options")
    handle, replaced = handles

    def session_of(row: Row) -> str:
        """A request with no session of its own is in its conversation's."""
        return row.record.get("conversation", "")

    wrong = [row.short() for row in rows if row.session != session_of(row)]
    assert not wrong, "rows whose session is not their conversation:\n" + "\n".join(wrong)
    assert sum(row.session == handle for row in rows) == 3, [row.short() for row in rows]
    assert sum(row.session == replaced for row in rows) == 1, [row.short() for row in rows]
