"""The disk spool, end to end: what a stdio server cannot deliver before it exits is delivered by
its next run, once.

A first run of `rmcp_stdio`, driven by an official MCP SDK client (Python, then TypeScript),
delivers to an Events API that hangs: a loopback TCP server that reads every request and never
answers. The client makes CALLS tool calls, each with its own arguments, the second half once
the server's worker is stuck in its request (their rows queue behind it), then closes the
session the SDK's way: it closes the server's stdin and gives it 2 s (Python's
`PROCESS_TERMINATION_TIMEOUT`, TypeScript's `close()`) before it sends SIGTERM. The server must
exit by itself within that grace, with status 0, every row of the session in its spool
directory, once, in files only its owner can read.

A later run with the same spool directory, delivering to the real loopback receiver, delivers
them, whatever its own session does: after it, the receiver holds each row of the first run
exactly once (the CALLS calls by request id among them), next to the later run's own rows, and
the spool directory is empty: every file acknowledged, then deleted.

Without the spool those rows would be lost: a hanging service answers nothing, and a stdio
server has only its client's grace to finish.
"""

from __future__ import annotations

import gzip
import shutil
import socket
import stat
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import anyio
import pytest
from mcp import ClientSession
from mcp.client import stdio as sdk_stdio
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.types import CallToolResult, Implementation

from e2e_support import (
    PRESENT,
    ClientRun,
    ExpectedRow,
    Expectations,
    Receiver,
    Row,
    SentLog,
    assert_rows_as_expected,
    await_rows,
    check_row_invariants,
    client_env,
    expected_rows,
    parse_row,
    server_env,
    utc_now,
    wait_until,
)

CALLS = 30
# The grace of both SDKs, from closing the server's stdin to SIGTERM (mcp 2.3.0's
# PROCESS_TERMINATION_TIMEOUT, checked below; @modelcontextprotocol/sdk 1.32.2's close() waits
# 2000 ms): the server has this long to secure its rows and exit.
SDK_GRACE_S = 2.0
LATER = ("e2e-spool-later", "2.0.0")
# How a spooled file's name ends (`{created}-{pid}-{sequence}-{events}[-sent].{datasource}`
# before it; see mcp-analytics/src/spool/name.rs).
SPOOLED = "*.ndjson.gz"

# Runs the server and writes its exit status once it is gone, which only happens when the
# server exited before the SDK's grace ran out (past it, the SDK kills the whole process group,
# this shell included): `bash -c SCRIPT wrapper SERVER STATUS_FILE`.
STATUS_SCRIPT = '"$1"; echo "$?" > "$2"'


class HangingEventsApi:
    """An Events API that hangs: a TCP server on 127.0.0.1 that accepts every connection and
    reads whatever comes, never answering nor closing it, until `close()`. Counts the requests
    begun: connections whose first bytes are `POST ` (a request never answered is the last its
    connection carries)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)  # the accept loop looks at `_closing` this often
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self._closing = False
        self._connections: list[socket.socket] = []
        self._requests = 0
        self._threads = [threading.Thread(target=self._accept, name="hanging-accept", daemon=True)]
        self._threads[0].start()

    @property
    def requests(self) -> int:
        with self._lock:
            return self._requests

    def _accept(self) -> None:
        while not self._closing:
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            reader = threading.Thread(target=self._read, args=(conn,), name="hanging-read", daemon=True)
            with self._lock:
                if self._closing:
                    conn.close()
                    return
                self._connections.append(conn)
                self._threads.append(reader)
            reader.start()

    def _read(self, conn: socket.socket) -> None:
        first = True
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return  # the client gave up; close() closes the socket
            if first and data.startswith(b"POST "):
                with self._lock:
                    self._requests += 1
            first = False

    def close(self) -> None:
        with self._lock:
            self._closing = True
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)


@pytest.fixture
def hanging_api() -> Iterator[HangingEventsApi]:
    api = HangingEventsApi()
    try:
        yield api
    finally:
        api.close()


@dataclass
class FirstRun:
    """What the first run left for the later one: the rows its session must have produced (all
    undelivered), the request ids of its CALLS calls, and how long the SDK's close took."""

    client: tuple[str, str]
    rows: list[ExpectedRow]
    call_ids: list[str]
    close_s: float
    stderr: str


# --------------------------------------------------------------------------------------------
# Driving rmcp_stdio with the Python SDK


def texts(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


async def poll(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Waits, without blocking the event loop, until `predicate` holds; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await anyio.sleep(0.02)


Body = Callable[[ClientSession, Expectations], Awaitable[None]]


def python_session(
    server: StdioServerParameters, client: tuple[str, str], errlog_path: Path, calls: Expectations, body: Body
) -> float:
    """Runs one stdio session of the official Python SDK: initialize, then `body`, then the
    SDK's own close. Returns how long the close took, from leaving the session to the SDK's
    transport having stopped the server (the server's exit, or the SDK's kill)."""
    closing: list[float] = []

    async def run() -> None:
        with open(errlog_path, "w") as errlog:
            async with stdio_client(server, errlog=errlog) as (read, write):
                calls.sent = SentLog(write)
                info = Implementation(name=client[0], version=client[1])
                async with ClientSession(read, calls.sent, client_info=info) as session:
                    with anyio.fail_after(30):
                        initialized = await session.initialize()
                        calls.protocol = initialized.protocol_version
                        calls.request("initialize", "initialize")
                        await body(session, calls)
                closing.append(time.monotonic())
        closing.append(time.monotonic())

    anyio.run(run)
    return closing[1] - closing[0]


def stdio_server(
    binary: Path, api_url: str, spool_dir: Path, tmp_path: Path, name: str
) -> tuple[StdioServerParameters, Path, Path]:
    """`rmcp_stdio` under a shell that writes its exit status, delivering to `api_url`,
    spooling to `spool_dir`; with the status file and the stderr log it will have."""
    bash = shutil.which("bash")
    assert bash, "bash is needed to see the server's exit status"
    workdir = tmp_path / name
    workdir.mkdir()  # no .env there: the server is configured by the variables below only
    status_file = tmp_path / f"{name}-exit-status"
    server = StdioServerParameters(
        command=bash,
        args=["-c", STATUS_SCRIPT, f"{name}-status", str(binary), str(status_file)],
        env=server_env(api_url, spool_dir),
        cwd=workdir,
    )
    return server, status_file, tmp_path / f"{name}-stderr.log"


def assert_exited_by_itself(status_file: Path, stderr: str, close_s: float, what: str) -> None:
    assert status_file.exists(), (
        f"{what}: the server did not exit by itself within the SDK's grace of {SDK_GRACE_S}s after "
        f"its stdin closed (the SDK killed it; the close took {close_s:.2f}s)\nserver stderr:\n{stderr}"
    )
    status = status_file.read_text().strip()
    assert status == "0", f"{what}: server exit status {status} (the close took {close_s:.2f}s)\n{stderr}"


# --------------------------------------------------------------------------------------------
# The two runs


def first_run_python(hanging: HangingEventsApi, binary: Path, spool_dir: Path, tmp_path: Path) -> FirstRun:
    """The first run, on the Python SDK: CALLS calls of `add(i, 1000)` (each answered
    `i + 1000`), the second half once the worker's request to the hanging Events API began."""
    # The grace this test is about, as the installed SDK has it.
    assert sdk_stdio.PROCESS_TERMINATION_TIMEOUT == SDK_GRACE_S, sdk_stdio.PROCESS_TERMINATION_TIMEOUT
    client = ("e2e-spool-first", "1.0.0")
    server, status_file, errlog = stdio_server(binary, hanging.url, spool_dir, tmp_path, "first")
    calls = Expectations(client=client, transport="pipe")

    async def body(session: ClientSession, calls: Expectations) -> None:
        for i in range(1, CALLS + 1):
            if i == CALLS // 2 + 1:
                # The worker sends a batch once its oldest row is a second old.
                await poll(lambda: hanging.requests >= 1, 10.0, "a request to the hanging Events API")
            result = await session.call_tool("add", {"a": i, "b": 1000})
            assert not result.is_error and texts(result) == str(i + 1000), result
            calls.call(f"add({i}, 1000)", "tool", "add", "ok", func_name="call_tool", handler_duration_ms=PRESENT)

    close_s = python_session(server, client, errlog, calls, body)
    stderr = errlog.read_text(errors="replace")
    assert_exited_by_itself(status_file, stderr, close_s, "first run (Python SDK), Events API hanging")
    assert calls.sent is not None
    call_ids = [str(m["id"]) for m in calls.sent.requests() if m["method"] == "tools/call"]
    return FirstRun(client, calls.rows(), call_ids, close_s, stderr)


def first_run_typescript(
    hanging: HangingEventsApi, binary: Path, spool_dir: Path, tmp_path: Path, clients: list[ClientRun]
) -> FirstRun:
    """The first run, on the TypeScript SDK (client.mjs --calls): the same calls, the second
    half once the worker's request to the hanging Events API began (the test tells the client
    by creating its resume file). client.mjs reports how the server exited."""
    workdir = tmp_path / "first"
    workdir.mkdir()  # no .env there: the server is configured by the variables below only
    resume = tmp_path / "resume"
    run = ClientRun(
        "ts-spool-first",
        "1.0.0",
        ["stdio", str(binary), "--calls", str(CALLS), "--resume-file", str(resume)],
        # client.mjs passes its TB_* and MCP_ANALYTICS_* variables on to the server.
        client_env(server_env(hanging.url, spool_dir)),
        workdir,
    )
    clients.append(run)
    # The worker sends a batch once its oldest row is a second old.
    wait_until(
        lambda: hanging.requests >= 1 or run.proc.poll() is not None, 10.0, "a request to the hanging Events API"
    )
    resume.touch()
    report = run.finish()
    steps = [step for step in report["steps"] if step["method"] == "tools/call"]
    assert [(step["outcome"], step.get("text")) for step in steps] == [
        ("result", str(i + 1000)) for i in range(1, CALLS + 1)
    ], steps
    close_s = (report["closed_at_ms"] - report["closing_at_ms"]) / 1000
    assert report["server_exit"] == {"code": 0, "signal": None, "killed_by_client": False}, (
        f"first run (TypeScript SDK), Events API hanging: the server did not exit by itself with status 0 "
        f"within the SDK's grace of {SDK_GRACE_S}s after its stdin closed: {report['server_exit']} (the close "
        f"took {close_s:.2f}s)\nclient and server stderr:\n{run.stderr}"
    )
    call_ids = [str(step["request_id"]) for step in steps]
    return FirstRun((run.name, run.version), expected_rows(report, session=None), call_ids, close_s, run.stderr)


def spooled_rows(files: list[Path]) -> list[Row]:
    """The rows the spooled files hold (each a gzip'd request body), each file's line count
    checked against the count its name says."""
    rows = []
    for path in files:
        lines = gzip.decompress(path.read_bytes()).decode("utf-8").splitlines()
        named = int(path.name.split(".", 1)[0].split("-")[3])
        assert len(lines) == named, f"{path.name} holds {len(lines)} rows, its name says {named}"
        rows += [parse_row(line) for line in lines]
    return rows


def check_spooled(first: FirstRun, spool_dir: Path) -> list[Path]:
    """Every row of the first run is on disk, once, in files only their owner reads; the batch
    in flight when the server stopped is marked as maybe delivered."""
    files = sorted(spool_dir.glob(SPOOLED))
    assert files, f"nothing spooled in {spool_dir}\nserver stderr:\n{first.stderr}"
    assert stat.S_IMODE(spool_dir.stat().st_mode) == 0o700, oct(spool_dir.stat().st_mode)
    modes = {path.name: oct(stat.S_IMODE(path.stat().st_mode)) for path in files}
    assert set(modes.values()) == {"0o600"}, modes
    assert_rows_as_expected(first.rows, spooled_rows(files), "spooled by the first run")
    # The request in flight may have reached the service: its file says so, and delivering it
    # again counts as a possible duplicate (`Stats::maybe_duplicated`).
    assert any("-sent." in path.name for path in files), list(modes)
    return files


def later_run(receiver: Receiver, binary: Path, spool_dir: Path, tmp_path: Path) -> tuple[list[ExpectedRow], float]:
    """The later run, on the Python SDK: the real receiver, the same spool directory, a short
    session of its own (initialize, ping). Returns the rows that session must produce, and how
    long its close took.

    Before closing, the session waits until the receiver holds its `notifications/initialized`
    row. That sidesteps a loss that is not the spool's: rmcp handles a notification in a task
    its serve loop does not wait for, so when stdin closes right after one, `main` may return
    and the analytics guard shut down before that task records the notification's row and drops
    the last reference to the connection, whose drop records the session's end; both rows are
    then dropped ("analytics is disabled or shut down: events are counted as dropped")."""
    server, status_file, errlog = stdio_server(binary, receiver.url, spool_dir, tmp_path, "later")
    calls = Expectations(client=LATER, transport="pipe")

    async def body(session: ClientSession, calls: Expectations) -> None:
        await session.send_ping()
        calls.request("ping", "ping")

        def notified() -> bool:
            return any(row.method == "notifications/initialized" and row.client == LATER for row in receiver.rows)

        await poll(notified, 10.0, "the later session's notifications/initialized row")

    close_s = python_session(server, LATER, errlog, calls, body)
    assert_exited_by_itself(status_file, errlog.read_text(errors="replace"), close_s, "later run")
    return calls.rows(), close_s


def check_delivered_once(
    first: FirstRun,
    receiver: Receiver,
    binary: Path,
    spool_dir: Path,
    tmp_path: Path,
    version: str,
    started: datetime,
) -> str:
    """The later run delivers every row the first left, once, and empties the spool; returns a
    summary line."""
    later_rows, later_close_s = later_run(receiver, binary, spool_dir, tmp_path)
    expected = first.rows + later_rows
    rows = await_rows(receiver, expected, timeout=10.0)
    check_row_invariants(rows, version, (started, utc_now()))
    # Exactly one row per expected row, nothing else: no row of the first run twice.
    assert_rows_as_expected(expected, rows, "after the later run")
    delivered = Counter(row.request_id for row in rows if row.kind == "tool" and row.client == first.client)
    assert len(first.call_ids) == CALLS and delivered == Counter(first.call_ids), (
        f"each of the first run's {CALLS} calls once, by request id: {delivered} != {first.call_ids}"
    )
    sessions = {client: {row.session for row in rows if row.client == client} for client in (first.client, LATER)}
    assert all(len(ids) == 1 for ids in sessions.values()) and sessions[first.client] != sessions[LATER], sessions
    # Every spooled file was acknowledged, then deleted, before the later run exited: nothing
    # left to send again, nothing set aside, no partial write.
    left = sorted(path.name for path in spool_dir.iterdir())
    assert not left, f"left in the spool after the later run: {left}"
    return f"delivered once by the next run (its close {later_close_s:.2f}s)"


# --------------------------------------------------------------------------------------------
# Tests


def check_first_run_delivered_once(
    sdk: str,
    first: FirstRun,
    hanging_api: HangingEventsApi,
    receiver: Receiver,
    stdio_server_bin: Path,
    spool_dir: Path,
    tmp_path: Path,
    version: str,
    started: datetime,
) -> None:
    """What both SDKs' tests check once their first run is over: none of its rows reached a
    service, all of them are on disk, and the next run delivers each once."""
    assert not receiver.rows, receiver.describe()  # nothing of the first run reached a service
    files = check_spooled(first, spool_dir)
    summary = check_delivered_once(first, receiver, stdio_server_bin, spool_dir, tmp_path, version, started)
    print(
        f"\nspool ({sdk}): {CALLS} calls, {len(first.rows)} rows spooled in {len(files)} files while the "
        f"Events API hung ({hanging_api.requests} requests unanswered; the SDK's close took {first.close_s:.2f}s), "
        + summary
    )


def test_python_sdk_close_with_the_events_api_hanging_loses_nothing(
    hanging_api: HangingEventsApi, receiver: Receiver, stdio_server_bin: Path, version: str, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"  # both runs share it; the server creates it
    started = utc_now()
    first = first_run_python(hanging_api, stdio_server_bin, spool_dir, tmp_path)
    check_first_run_delivered_once(
        "Python SDK", first, hanging_api, receiver, stdio_server_bin, spool_dir, tmp_path, version, started
    )


def test_typescript_sdk_close_with_the_events_api_hanging_loses_nothing(
    hanging_api: HangingEventsApi,
    receiver: Receiver,
    stdio_server_bin: Path,
    version: str,
    tmp_path: Path,
    clients: list[ClientRun],
) -> None:
    spool_dir = tmp_path / "spool"  # both runs share it; the server creates it
    started = utc_now()
    first = first_run_typescript(hanging_api, stdio_server_bin, spool_dir, tmp_path, clients)
    check_first_run_delivered_once(
        "TypeScript SDK", first, hanging_api, receiver, stdio_server_bin, spool_dir, tmp_path, version, started
    )
