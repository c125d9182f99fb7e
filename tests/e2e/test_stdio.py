"""`rmcp_stdio` driven by the official MCP Python SDK over stdio: every handler path, then exactly
one row per request and notification the client sent, plus the session's start and end, at the
receiver, as `mcp_analytics::rmcp::instrument!` records them; nothing but JSON-RPC on the
server's stdout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import anyio
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.types import INVALID_PARAMS, REQUEST_TIMEOUT, CallToolResult, Implementation, jsonrpc_message_adapter

from e2e_support import (
    expect_mcp_error,
    CRASH_MESSAGE,
    PRESENT,
    Expectations,
    Receiver,
    SentLog,
    assert_rows_as_expected,
    await_rows,
    check_listings,
    check_row_invariants,
    contains,
    is_uuid_v4,
    server_env,
    utc_now,
)

CLIENT = ("e2e-client", "1.2.3")
# The crash tool never answers; how long to wait for the answer that must not come.
CRASH_TIMEOUT_S = 1.5
SLOW_ECHO_DELAY_MS = 150

# Runs the server with its stdout copied to a file, and writes its exit status once it is gone:
# `bash -c SCRIPT wrapper SERVER WIRE_LOG STATUS_FILE`.
TEE_SCRIPT = '"$1" | tee "$2"; echo "${PIPESTATUS[0]}" > "$3"'


def texts(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


async def drive(session: ClientSession, calls: Expectations) -> dict[str, list[str]]:
    """Lists everything, then makes every call the contract describes, recording for each the
    row it must produce. Asserts the client-visible result of each call on the way. Returns
    what each listing gave, in order."""
    initialized = await session.initialize()
    calls.protocol = initialized.protocol_version
    calls.request("initialize", "initialize")

    listed: dict[str, list[str]] = {}
    listed["tools/list"] = [tool.name for tool in (await session.list_tools()).tools]
    assert set(listed["tools/list"]) == {"add", "divide", "lookup", "slow_echo", "crash"}, listed
    calls.request("tools/list", "tools/list", listed=listed["tools/list"])
    listed["prompts/list"] = [prompt.name for prompt in (await session.list_prompts()).prompts]
    assert set(listed["prompts/list"]) == {"greet", "summarize"}, listed
    calls.request("prompts/list", "prompts/list", listed=listed["prompts/list"])
    listed["resources/list"] = [str(resource.uri) for resource in (await session.list_resources()).resources]
    assert set(listed["resources/list"]) == {"mem://readme", "mem://config"}, listed
    calls.request("resources/list", "resources/list", listed=listed["resources/list"])
    await session.send_ping()
    calls.request("ping", "ping")

    def tool(label: str, name: str, outcome: str, **kwargs) -> None:
        calls.call(label, "tool", name, outcome, func_name="call_tool", handler_duration_ms=PRESENT, **kwargs)

    # Tools: success paths.
    result = await session.call_tool("add", {"a": 2, "b": 3})
    assert not result.is_error and texts(result) == "5", result
    tool("add(2, 3)", "add", "ok")

    result = await session.call_tool("divide", {"a": 7, "b": 2})
    assert not result.is_error and texts(result) == "3", result
    tool("divide(7, 2)", "divide", "ok")

    for key in ("rust", "python"):
        result = await session.call_tool("lookup", {"key": key})
        assert not result.is_error and texts(result), result
        tool(f"lookup({key})", "lookup", "ok")

    with anyio.fail_after(10):
        started = anyio.current_time()
        result = await session.call_tool("slow_echo", {"text": "hello", "delay_ms": SLOW_ECHO_DELAY_MS})
        assert anyio.current_time() - started >= SLOW_ECHO_DELAY_MS / 1000
    assert not result.is_error and texts(result) == "hello", result
    tool("slow_echo(hello)", "slow_echo", "ok", min_duration_ms=SLOW_ECHO_DELAY_MS)

    # Tools: a tool error result, a JSON-RPC error, rejected arguments, an unknown tool.
    result = await session.call_tool("divide", {"a": 1, "b": 0})
    assert result.is_error and texts(result) == "division by zero", result
    tool("divide(1, 0)", "divide", "error", error="division by zero", error_type="tool_error")

    error = await expect_mcp_error(session.call_tool("lookup", {"key": "cobol"}))
    assert error.code == INVALID_PARAMS and "unknown key: cobol" in error.message, error
    tool("lookup(cobol)", "lookup", "error", error=contains("unknown key: cobol"), error_type="-32602")

    # rmcp answers arguments that do not deserialize with an isError result, not a JSON-RPC error.
    result = await session.call_tool("add", {"a": "x", "b": 1})
    assert result.is_error and "deserializ" in texts(result).lower(), result
    # The row's error is the text the client got.
    tool("add(x, 1)", "add", "error", error=texts(result), error_type="tool_error")

    # rmcp answers an unknown tool with a JSON-RPC error -32602.
    error = await expect_mcp_error(session.call_tool("no_such_tool", {}))
    assert error.code == INVALID_PARAMS, error
    tool("no_such_tool()", "no_such_tool", "error", error=contains(error.message), error_type="-32602")

    # A panicking tool: no answer (the SDK gives up and sends notifications/cancelled); the
    # server goes on serving.
    error = await expect_mcp_error(session.call_tool("crash", {}, read_timeout_seconds=CRASH_TIMEOUT_S))
    assert error.code == REQUEST_TIMEOUT, f"crash was answered instead of timing out: {error!r}"
    tool("crash()", "crash", "panic", error_type="panic", error=CRASH_MESSAGE)

    result = await session.call_tool("add", {"a": 40, "b": 2})
    assert not result.is_error and texts(result) == "42", result
    tool("add(40, 2) after the crash", "add", "ok")

    # Prompts: `#[mcp_prompt]` on each prompt function joins the row.
    prompt = await session.get_prompt("greet", {"name": "Ada"})
    assert prompt.messages and "Ada" in prompt.messages[0].content.text, prompt
    calls.call("greet(Ada)", "prompt", "greet", "ok", func_name="greet", handler_duration_ms=PRESENT)

    prompt = await session.get_prompt("summarize", {"topic": "ownership"})
    assert prompt.messages and "ownership" in prompt.messages[0].content.text, prompt
    calls.call("summarize(ownership)", "prompt", "summarize", "ok", func_name="summarize", handler_duration_ms=PRESENT)

    error = await expect_mcp_error(session.get_prompt("greet", {"name": ""}))
    assert error.code == INVALID_PARAMS, error
    calls.call(
        "greet('')", "prompt", "greet", "error", func_name="greet", handler_duration_ms=PRESENT,
        error=contains(error.message), error_type="-32602",
    )

    # Resources: `#[mcp_resource]` on read_resource joins the row.
    for uri in ("mem://readme", "mem://config"):
        contents = (await session.read_resource(uri)).contents
        assert len(contents) == 1 and str(contents[0].uri) == uri and contents[0].text, contents
        calls.call(f"read {uri}", "resource", uri, "ok", func_name="read_resource", handler_duration_ms=PRESENT)

    error = await expect_mcp_error(session.read_resource("mem://missing"))
    calls.call(
        "read mem://missing", "resource", "mem://missing", "error", func_name="read_resource",
        handler_duration_ms=PRESENT, error=contains(error.message), error_type=str(error.code),
    )

    # Listing the same again: a row without `listed`.
    await session.list_tools()
    calls.request("tools/list again", "tools/list", listed=None)
    return listed


def check_wire_log(wire_log: Path) -> int:
    """Every line the server wrote to stdout is one JSON-RPC 2.0 message; returns how many."""
    data = wire_log.read_text(encoding="utf-8")
    assert data, "the server wrote nothing to stdout"
    assert data.endswith("\n"), f"stdout does not end with a complete line: {data[-200:]!r}"
    lines = data[:-1].split("\n")
    responses = 0
    for number, line in enumerate(lines, 1):
        try:
            message = json.loads(line)
        except json.JSONDecodeError as error:
            raise AssertionError(f"stdout line {number} is not JSON ({error}): {line!r}") from None
        assert isinstance(message, dict) and message.get("jsonrpc") == "2.0", f"line {number}: {line!r}"
        is_response = "id" in message and (("result" in message) != ("error" in message))
        is_request = "method" in message and "result" not in message and "error" not in message
        assert is_response != is_request, (
            f"stdout line {number} is neither request, notification nor response: {line!r}"
        )
        jsonrpc_message_adapter.validate_json(line)  # the SDK's own schema, strictly
        responses += is_response
    assert responses > 0, "no JSON-RPC response on stdout"
    return len(lines)


def test_stdio_every_request_records_exactly_one_row(
    receiver: Receiver, stdio_server_bin: Path, version: str, tmp_path: Path
) -> None:
    bash = shutil.which("bash")
    assert bash, "bash is needed to tee the server's stdout"
    wire_log, status_file = tmp_path / "stdout.jsonl", tmp_path / "exit-status"
    workdir = tmp_path / "server"
    workdir.mkdir()  # no .env there: the server is configured by the variables below only
    params = StdioServerParameters(
        command=bash,
        args=["-c", TEE_SCRIPT, "stdio-tee", str(stdio_server_bin), str(wire_log), str(status_file)],
        env=server_env(receiver.url, workdir / "spool"),
        cwd=workdir,
    )
    calls = Expectations(client=CLIENT, transport="pipe")
    listed: dict[str, list[str]] = {}

    async def run() -> None:
        with open(tmp_path / "server-stderr.log", "w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write):
                calls.sent = SentLog(write)
                async with ClientSession(
                    read, calls.sent, client_info=Implementation(name=CLIENT[0], version=CLIENT[1])
                ) as session:
                    with anyio.fail_after(30):
                        listed.update(await drive(session, calls))
        # Leaving stdio_client closed the server's stdin and waited (2 s at most) for it to exit.

    started = utc_now()
    anyio.run(run)
    finished = utc_now()
    server_stderr = (tmp_path / "server-stderr.log").read_text(errors="replace")

    assert status_file.exists(), (
        "the server did not exit by itself when its stdin closed (the client had to kill it)\n"
        f"server stderr:\n{server_stderr}"
    )
    assert status_file.read_text().strip() == "0", (
        f"server exit status {status_file.read_text().strip()}\n{server_stderr}"
    )

    wire_lines = check_wire_log(wire_log)

    # The server flushed on exit: everything is at the receiver within a few seconds.
    expected = calls.rows()
    rows = await_rows(receiver, expected)

    checked = check_row_invariants(rows, version, (started, finished))
    assert_rows_as_expected(expected, rows, "stdio")
    check_listings(rows, listed)

    sessions = {row.session for row in rows}
    assert len(sessions) == 1, f"one stdio process is one session, got {sessions}"
    (session_id,) = sessions
    assert is_uuid_v4(session_id), f"session {session_id!r} is not a UUID v4"
    # The session's rows frame the others. On a pipe the session starts once `initialize` is
    # answered: only that row may start before it, by its duration at most (timestamps are in
    # whole milliseconds).
    start, end = (next(row for row in rows if row.event == event) for event in ("start", "end"))
    initialize = next(row for row in rows if row.method == "initialize")
    early = [row.short() for row in rows if row is not initialize and row.started_at() < start.started_at()]
    initialize_lead_ms = (start.started_at() - initialize.started_at()).total_seconds() * 1000
    if initialize_lead_ms > initialize.duration_ms + 1:
        early.append(initialize.short())
    assert not early, f"rows started before the session ({start.short()}):\n" + "\n".join(early)
    longest = max(rows, key=lambda row: row.duration_ms if row.kind != "session" else -1)
    assert end.duration_ms >= longest.duration_ms, f"the session ended before a request did:\n{end.short()}\n{longest.short()}"

    print(
        f"\nstdio: {len(calls.sent.requests())} requests, {len(calls.sent.notifications())} notifications, "
        f"{checked} rows checked ({wire_lines} stdout lines, all JSON-RPC)"
    )
