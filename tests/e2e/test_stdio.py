"""`rmcp_stdio` driven by the official MCP Python SDK over stdio: every handler path, then exactly
one event per call at the receiver, and nothing but JSON-RPC on the server's stdout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import anyio
import pytest
from mcp import ClientSession, MCPError
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.types import REQUEST_TIMEOUT, CallToolResult, Implementation, jsonrpc_message_adapter

from e2e_support import (
    TOKEN,
    Expectations,
    Receiver,
    assert_exactly_one_event_per_call,
    check_row_invariants,
    is_uuid_v4,
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


async def expect_mcp_error(awaitable) -> MCPError:
    with pytest.raises(MCPError) as caught:
        await awaitable
    return caught.value


async def drive(session: ClientSession, calls: Expectations) -> None:
    """Lists everything, then makes every call the contract describes, recording for each the
    event it must produce. Asserts the client-visible result of each call on the way."""
    await session.initialize()

    tools = {tool.name for tool in (await session.list_tools()).tools}
    assert {"add", "divide", "lookup", "slow_echo", "crash"} <= tools, tools
    prompts = {prompt.name for prompt in (await session.list_prompts()).prompts}
    assert {"greet", "summarize"} <= prompts, prompts
    resources = {str(resource.uri) for resource in (await session.list_resources()).resources}
    assert resources == {"mem://readme", "mem://config"}, resources

    # Tools: success paths.
    result = await session.call_tool("add", {"a": 2, "b": 3})
    assert not result.is_error and texts(result) == "5", result
    calls.expect("add(2, 3)", "tool", "add", "ok")

    result = await session.call_tool("divide", {"a": 7, "b": 2})
    assert not result.is_error and texts(result) == "3", result
    calls.expect("divide(7, 2)", "tool", "divide", "ok")

    for key in ("rust", "python"):
        result = await session.call_tool("lookup", {"key": key})
        assert not result.is_error and texts(result), result
        calls.expect(f"lookup({key})", "tool", "lookup", "ok")

    with anyio.fail_after(10):
        started = anyio.current_time()
        result = await session.call_tool("slow_echo", {"text": "hello", "delay_ms": SLOW_ECHO_DELAY_MS})
        assert anyio.current_time() - started >= SLOW_ECHO_DELAY_MS / 1000
    assert not result.is_error and texts(result) == "hello", result
    calls.expect("slow_echo(hello)", "tool", "slow_echo", "ok", min_duration_ms=SLOW_ECHO_DELAY_MS)

    # Tools: a tool error result, a JSON-RPC error, rejected arguments, an unknown tool.
    result = await session.call_tool("divide", {"a": 1, "b": 0})
    assert result.is_error and texts(result) == "division by zero", result
    calls.expect("divide(1, 0)", "tool", "divide", "error", error="division by zero")

    error = await expect_mcp_error(session.call_tool("lookup", {"key": "cobol"}))
    assert "unknown key: cobol" in error.message, error
    calls.expect("lookup(cobol)", "tool", "lookup", "error", error=None, error_contains="unknown key: cobol")

    result = await session.call_tool("add", {"a": "x", "b": 1})
    assert result.is_error and "deserializ" in texts(result).lower(), result
    # The event's error is the text the client got.
    calls.expect("add(x, 1)", "tool", "add", "error", error=texts(result))

    error = await expect_mcp_error(session.call_tool("no_such_tool", {}))
    calls.expect("no_such_tool()", "tool", "no_such_tool", "error", error=None, error_contains=error.message)

    # A panicking tool: no answer; the server goes on serving.
    error = await expect_mcp_error(session.call_tool("crash", {}, read_timeout_seconds=CRASH_TIMEOUT_S))
    assert error.code == REQUEST_TIMEOUT, f"crash was answered instead of timing out: {error!r}"
    calls.expect("crash()", "tool", "crash", "panic")

    result = await session.call_tool("add", {"a": 40, "b": 2})
    assert not result.is_error and texts(result) == "42", result
    calls.expect("add(40, 2) after the crash", "tool", "add", "ok")

    # Prompts.
    prompt = await session.get_prompt("greet", {"name": "Ada"})
    assert prompt.messages and "Ada" in prompt.messages[0].content.text, prompt
    calls.expect("greet(Ada)", "prompt", "greet", "ok")

    prompt = await session.get_prompt("summarize", {"topic": "ownership"})
    assert prompt.messages and "ownership" in prompt.messages[0].content.text, prompt
    calls.expect("summarize(ownership)", "prompt", "summarize", "ok")

    error = await expect_mcp_error(session.get_prompt("greet", {"name": ""}))
    calls.expect("greet('')", "prompt", "greet", "error", error=None, error_contains=error.message)

    # Resources.
    for uri in ("mem://readme", "mem://config"):
        contents = (await session.read_resource(uri)).contents
        assert len(contents) == 1 and str(contents[0].uri) == uri and contents[0].text, contents
        calls.expect(f"read {uri}", "resource", uri, "ok")

    error = await expect_mcp_error(session.read_resource("mem://missing"))
    calls.expect(
        "read mem://missing", "resource", "mem://missing", "error", error=None, error_contains=error.message
    )

    # Listing again records nothing either.
    await session.list_tools()


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


def test_stdio_every_call_records_exactly_one_event(
    receiver: Receiver, stdio_server_bin: Path, version: str, tmp_path: Path
) -> None:
    bash = shutil.which("bash")
    assert bash, "bash is needed to tee the server's stdout"
    wire_log, status_file = tmp_path / "stdout.jsonl", tmp_path / "exit-status"
    workdir = tmp_path / "server"
    workdir.mkdir()  # no .env there: the server is configured by the two variables below only
    params = StdioServerParameters(
        command=bash,
        args=["-c", TEE_SCRIPT, "stdio-tee", str(stdio_server_bin), str(wire_log), str(status_file)],
        env={"TB_API_URL": receiver.url, "TB_WRITE_TOKEN": TOKEN},
        cwd=workdir,
    )
    calls = Expectations(client=CLIENT)

    async def run() -> None:
        with open(tmp_path / "server-stderr.log", "w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write):
                async with ClientSession(
                    read, write, client_info=Implementation(name=CLIENT[0], version=CLIENT[1])
                ) as session:
                    with anyio.fail_after(30):
                        await drive(session, calls)
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
    receiver.wait_for(len(calls), timeout=5)
    rows = receiver.settle()
    assert not receiver.malformed, receiver.describe()
    assert not receiver.rejections, receiver.describe()

    events = check_row_invariants(rows, version, (started, finished))
    assert_exactly_one_event_per_call(calls.items, rows)

    sessions = {row.session for row in rows}
    assert len(sessions) == 1, f"one stdio process is one session, got {sessions}"
    (session_id,) = sessions
    assert is_uuid_v4(session_id), f"session {session_id!r} is not a UUID v4"

    print(f"\nstdio: {len(calls)} calls, {events} events checked ({wire_lines} stdout lines, all JSON-RPC)")
