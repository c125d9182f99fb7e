"""Shared helpers of the end-to-end suite: the example binaries and the environment they run in
(each server's own spool directory), the loopback Events API receiver, the rows it prints, the
rows of `mcp_analytics::rmcp::instrument!`'s contract (what every row satisfies, by kind),
matching the rows received against those the requests, notifications and sessions of a test's
clients must have produced, and the scripted TypeScript SDK client (ts/client.mjs).

Every wait here is bounded and polls a condition (no bare sleeps); every process started here is
stopped by its owner's `stop()`, which the fixtures in `conftest.py` always call.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import tomllib
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from mcp import MCPError

if TYPE_CHECKING:
    from mcp.types import CallToolResult

REPO_ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-token"
# Where an example server spools what it cannot deliver (`mcp_analytics::init` reads it). Every
# server the suite starts gets a directory of its own under its test's temporary directory
# (`server_env`): the default, the user's cache, is shared by every run of the same binary.
SPOOL_DIR_VARIABLE = "MCP_ANALYTICS_SPOOL_DIR"
# The example servers, by executable name: the default spool of each is
# `<cache>/mcp-analytics/<name>/<datasource>`, which the suite must never touch. (The suite's
# other example, metrics_workload, reads no environment and has no spool.)
EXAMPLE_SERVERS = ("rmcp_stdio", "rmcp_http")
# What the demo server's crash tool panics with: its row's `error`.
CRASH_MESSAGE = "the crash tool panics on purpose"
APP_NAME = "mcp-analytics-dev"
TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}$")

# The row kinds of `mcp_analytics::rmcp::instrument!` (the README's table). Handler calls are
# rows of their tool, prompt or resource, one per `tools/call`, `prompts/get`, `resources/read`
# request; every other request, each client notification, each session's start and end and
# each finished task are rows of their own.
HANDLER_KINDS = ("tool", "prompt", "resource")
HANDLER_METHOD = {"tool": "tools/call", "prompt": "prompts/get", "resource": "resources/read"}
KIND_OF_METHOD = {method: kind for kind, method in HANDLER_METHOD.items()}
# A missing-capability report (the wrapper's `missing_capability_tool` option) is a `tools/call`
# the wrapper answers: a row of its own kind, named under `name`, never a call of a tool.
MISSING_CAPABILITY = "missing_capability"
KINDS = (*HANDLER_KINDS, "request", "notification", "session", "task", MISSING_CAPABILITY)
OUTCOMES = ("ok", "error", "panic", "cancelled", "input_required", "task")
# The template counts failed and panicked calls as errors; nothing else is the server's failure.
LEVEL_OF_OUTCOME = {outcome: "error" if outcome in ("error", "panic") else "info" for outcome in OUTCOMES}
TRANSPORTS = ("pipe", "tcp")
ERROR_TYPE_RE = re.compile(r"^(tool_error|panic|-?\d+)$")

# The keys every record has (and `funcName`, on every row but a session's, which no function
# serves).
ALWAYS_KEYS = frozenset({"appName", "version", "message", "kind"})
# Who asked, in which protocol, over what: on every kind of row, when known.
ORIGIN_KEYS = frozenset({"client_name", "client_version", "protocol_version", "transport"})
# What ties the rows of a call that spans requests (input required, tasks) together.
LINK_KEYS = frozenset({"continuation", "resumes", "task_id", "total_duration_ms"})
# What the agent said of a call, with the wrapper's agent-facing options on (off by default),
# and what the request's `_meta` says of its caller when it says it: the model (SEP-2817), the
# W3C trace (SEP-414).
AGENT_KEYS = frozenset({"intent", "conversation", "model", "trace_id", "span_id"})
# Per kind: the keys a record must have besides ALWAYS_KEYS, and those it may have. A key
# without a value is left out, never sent empty.
KIND_KEYS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    **{
        kind: (
            frozenset({"funcName", kind, "method", "outcome", "duration_ms", "transport", "request_id"}),
            ORIGIN_KEYS | LINK_KEYS | AGENT_KEYS | {"handler_duration_ms", "error", "error_type"},
        )
        for kind in HANDLER_KINDS
    },
    MISSING_CAPABILITY: (
        frozenset({"funcName", "name", "method", "outcome", "duration_ms", "transport", "request_id"}),
        ORIGIN_KEYS | AGENT_KEYS,
    ),
    "request": (
        frozenset({"funcName", "method", "outcome", "duration_ms", "transport", "request_id"}),
        ORIGIN_KEYS | {"error", "error_type", "listed", "model", "trace_id", "span_id"},
    ),
    "notification": (frozenset({"funcName", "method", "outcome", "duration_ms", "transport"}), ORIGIN_KEYS),
    # A session row has no outcome and no request; its end has the session's duration.
    "session": (frozenset({"event", "transport"}), ORIGIN_KEYS | {"duration_ms"}),
    "task": (
        frozenset({"funcName", "name", "outcome", "duration_ms"}),
        ORIGIN_KEYS | LINK_KEYS | AGENT_KEYS | {"request_id", "error", "error_type"},
    ),
}
# Every key a record may have.
RECORD_KEYS = ALWAYS_KEYS.union(*(required | allowed for required, allowed in KIND_KEYS.values()))
# The listings whose rows say what they listed.
LISTINGS = ("tools/list", "prompts/list", "resources/list", "resources/templates/list")


def workspace_version() -> str:
    """`[workspace.package] version` of the workspace's Cargo.toml."""
    with open(REPO_ROOT / "Cargo.toml", "rb") as manifest:
        return tomllib.load(manifest)["workspace"]["package"]["version"]


def debug_dir() -> Path:
    """`target/debug`, or its place under `CARGO_TARGET_DIR`."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", "target"))
    if not target.is_absolute():
        target = REPO_ROOT / target
    return target / "debug"


def built_binary(path: Path) -> Path:
    """`path` if it is an executable; fails the test (without running cargo) when it is not."""
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"binary {path} is missing: build the binaries and examples first "
            "(`cargo build --workspace --bins --examples`; tests/run.sh does it before running "
            "this suite)",
            pytrace=False,
        )
    return path


def example_binary(name: str) -> Path:
    """The built example `name` (`target/debug/examples/NAME`)."""
    return built_binary(debug_dir() / "examples" / name)


def workspace_binary(name: str) -> Path:
    """The built binary `name` of a workspace crate (`target/debug/NAME`)."""
    return built_binary(debug_dir() / name)


def server_env(receiver_url: str, spool_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The variables an example server is configured by: it delivers to `receiver_url` with
    TOKEN, and spools what it cannot deliver to `spool_dir`, which should be its own, under the
    test's temporary directory. Without it, the server would spool to the user's cache
    (`~/.cache/mcp-analytics/<executable>/<datasource>`), shared by every test and every run:
    what one test's server left undelivered would be delivered by a later test's, to that
    test's receiver. `extra` comes last: a test may set anything, its own spool directory too."""
    return {"TB_API_URL": receiver_url, "TB_WRITE_TOKEN": TOKEN, SPOOL_DIR_VARIABLE: str(spool_dir), **(extra or {})}


def default_spool_roots() -> list[Path]:
    """Where the example servers' default spools would be (`<cache>/mcp-analytics/<example>`):
    under `$XDG_CACHE_HOME` and under `~/.cache` (a server started by an MCP SDK inherits HOME,
    never XDG_CACHE_HOME), and `~/Library/Caches` on macOS."""
    caches = [Path.home() / ".cache", Path.home() / "Library" / "Caches"]
    if os.environ.get("XDG_CACHE_HOME"):
        caches.insert(0, Path(os.environ["XDG_CACHE_HOME"]))
    return [cache / "mcp-analytics" / name for cache in caches for name in EXAMPLE_SERVERS]


def spool_footprint(roots: Iterable[Path]) -> dict[Path, int]:
    """Every directory and file under `roots`, with its modification time (ns): a spool file
    written and deleted again between two footprints still changes its directory's."""
    footprint: dict[Path, int] = {}
    for root in roots:
        if not root.is_dir():
            continue
        for path in [root, *root.rglob("*")]:
            try:
                footprint[path] = path.stat().st_mtime_ns
            except FileNotFoundError:
                continue
    return footprint


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.02) -> None:
    """Polls `predicate` until it holds; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# Rows


@dataclass(frozen=True)
class Row:
    """One row the receiver accepted: the NDJSON line, with `record` parsed from its string."""

    timestamp: str
    session: str
    level: str
    record: dict
    raw: str

    @property
    def kind(self) -> str:
        return self.record.get("kind", "")

    @property
    def name(self) -> str:
        """What the row is about: the handler's name (the record field named after its kind),
        the method of a request or notification, the event of a session, the task's name."""
        kind = self.kind
        if kind in HANDLER_KINDS:
            return self.record.get(kind, "")
        if kind == "session":
            return self.record.get("event", "")
        if kind in ("task", MISSING_CAPABILITY):
            return self.record.get("name", "")
        return self.record.get("method", "")

    @property
    def method(self) -> str:
        return self.record.get("method", "")

    @property
    def event(self) -> str:
        return self.record.get("event", "")

    @property
    def outcome(self) -> str:
        return self.record.get("outcome", "")

    @property
    def error(self) -> str:
        return self.record.get("error", "")

    @property
    def error_type(self) -> str:
        return self.record.get("error_type", "")

    @property
    def duration_ms(self) -> float:
        return self.record.get("duration_ms", -1.0)

    @property
    def handler_duration_ms(self) -> float | None:
        return self.record.get("handler_duration_ms")

    @property
    def client(self) -> tuple[str, str]:
        return self.record.get("client_name", ""), self.record.get("client_version", "")

    @property
    def protocol_version(self) -> str:
        return self.record.get("protocol_version", "")

    @property
    def transport(self) -> str:
        return self.record.get("transport", "")

    @property
    def request_id(self) -> str:
        return self.record.get("request_id", "")

    @property
    def listed(self) -> list[str] | None:
        return self.record.get("listed")

    def started_at(self) -> datetime:
        return datetime.strptime(self.timestamp, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)

    def short(self) -> str:
        record = self.record
        name = self.name if self.name != self.method else ""
        parts = [f"{self.kind}:{self.method or '-'}:{name or '-'}", f"outcome={self.outcome or '-'}"]
        for key in ("error_type", "error"):
            if key in record:
                parts.append(f"{key}={record[key]!r}")
        parts += [
            f"level={self.level}",
            f"session={self.session!r}",
            f"client={'/'.join(self.client) if any(self.client) else '-'}",
            f"transport={self.transport or '-'}",
            f"protocol={self.protocol_version or '-'}",
            f"request_id={self.request_id or '-'}",
            f"funcName={record.get('funcName')!r}",
        ]
        if "duration_ms" in record:
            parts.append(f"duration_ms={record['duration_ms']}")
        if "handler_duration_ms" in record:
            parts.append(f"handler_duration_ms={record['handler_duration_ms']}")
        if "listed" in record:
            parts.append(f"listed={record['listed']}")
        return " ".join(parts)


def parse_row(line: str) -> Row:
    """Parses one line the receiver printed; raises ValueError when it is not a well-formed row."""
    row = json.loads(line)
    if not isinstance(row, dict) or set(row) != {"timestamp", "session", "level", "record"}:
        raise ValueError(f"unexpected row shape: {line}")
    if not isinstance(row["record"], str):
        raise ValueError(f"`record` is not a string holding JSON: {line}")
    record = json.loads(row["record"])
    if not isinstance(record, dict):
        raise ValueError(f"`record` does not hold a JSON object: {line}")
    return Row(row["timestamp"], row["session"], row["level"], record, line)


# --------------------------------------------------------------------------------------------
# The streamable HTTP example server

def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class HttpServer:
    """`rmcp_http PORT [--stateless]`, configured by TB_API_URL and TB_WRITE_TOKEN, its spool in
    `workdir/spool` (see `server_env`; `env` may name another); its stderr is read from a
    thread; started when it announced its URL."""

    def __init__(
        self,
        binary: Path,
        receiver_url: str,
        workdir: Path,
        startup_timeout: float = 10.0,
        stateless: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_loopback_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self._cond = threading.Condition()
        self._stderr: list[str] = []
        self._stdout_log = open(workdir / "server-stdout.log", "w+")
        self.proc = subprocess.Popen(
            [str(binary), str(self.port), *(["--stateless"] if stateless else [])],
            stdin=subprocess.DEVNULL,
            stdout=self._stdout_log,
            stderr=subprocess.PIPE,
            text=True,
            cwd=workdir,  # no .env there
            env=server_env(receiver_url, workdir / "spool", env),
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


# --------------------------------------------------------------------------------------------
# The receiver process


def pump_lines(stream, lines: list[str], cond: threading.Condition) -> None:
    """Appends each line of `stream` (without its newline) to `lines` under `cond`, waking its
    waiters; wakes them once more at EOF, when the process is gone, so no wait outlives it."""
    for line in stream:
        with cond:
            lines.append(line.rstrip("\n"))
            cond.notify_all()
    with cond:
        cond.notify_all()


class Receiver:
    """`target/debug/mcp-analytics-receiver --json 0`: a strict loopback Events API on a free
    port, printing each accepted row's NDJSON line as received, read from threads."""

    FIRST_LINE = re.compile(r"^Events API on (http://127\.0\.0\.1:(\d+)) \(token `([^`]*)`")

    def __init__(self, binary: Path, workdir: Path, startup_timeout: float = 10.0) -> None:
        self._cond = threading.Condition()
        self._rows: list[Row] = []
        self._malformed: list[str] = []
        self._stderr: list[str] = []
        self._last_row_at = time.monotonic()
        self.proc = subprocess.Popen(
            [str(binary), "--json", "0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=workdir,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )
        self._threads = [
            threading.Thread(target=self._read_stdout, name="receiver-stdout", daemon=True),
            threading.Thread(target=self._read_stderr, name="receiver-stderr", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        try:
            self.url, self.port = self._await_banner(startup_timeout)
        except BaseException:
            self.stop()
            raise

    def _await_banner(self, timeout: float) -> tuple[str, int]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._stderr and self.proc.poll() is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"the receiver printed nothing on stderr within {timeout}s")
                self._cond.wait(remaining)
            if not self._stderr:
                raise AssertionError(f"the receiver exited ({self.proc.returncode}) before printing its URL")
            first = self._stderr[0]
        match = self.FIRST_LINE.match(first)
        assert match, f"unexpected first stderr line of the receiver: {first!r}"
        assert match.group(3) == TOKEN, f"the receiver expects token {match.group(3)!r}, not {TOKEN!r}"
        return match.group(1), int(match.group(2))

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            if not line:
                continue
            try:
                row = parse_row(line)
            except ValueError:
                row = None
            with self._cond:
                if row is None:
                    self._malformed.append(line)
                else:
                    self._rows.append(row)
                self._last_row_at = time.monotonic()
                self._cond.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        pump_lines(self.proc.stderr, self._stderr, self._cond)

    @property
    def rows(self) -> list[Row]:
        with self._cond:
            return list(self._rows)

    @property
    def malformed(self) -> list[str]:
        with self._cond:
            return list(self._malformed)

    @property
    def rejections(self) -> list[str]:
        with self._cond:
            return [line for line in self._stderr if line.startswith("rejected:")]

    def describe(self) -> str:
        with self._cond:
            rows = "\n".join(f"  {row.short()}" for row in self._rows) or "  (none)"
            stderr = "\n".join(f"  {line}" for line in self._stderr) or "  (none)"
            malformed = "\n".join(f"  {line}" for line in self._malformed)
        text = f"rows received:\n{rows}\nreceiver stderr:\n{stderr}"
        return text + (f"\nmalformed stdout lines:\n{malformed}" if malformed else "")

    def wait_for(self, until: int | Callable[[list[Row]], bool], timeout: float = 10.0) -> list[Row]:
        """Waits until `until` rows arrived (an int), or until `until(rows)` holds; returns the rows."""
        if isinstance(until, int):
            count = until
            predicate: Callable[[list[Row]], bool] = lambda rows: len(rows) >= count
            what = f"{count} rows"
        else:
            predicate, what = until, getattr(until, "__name__", "the condition")
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self._rows):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            else:
                return list(self._rows)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{self.describe()}")

    def settle(self, quiet: float = 0.5, timeout: float = 5.0) -> list[Row]:
        """Waits until no row has arrived for `quiet` seconds, then returns all rows.

        The receiver prints what it accepted every 100 ms, so after the expected rows arrived a
        quiet period of several of its cycles is what shows that nothing *else* is coming.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                idle = now - self._last_row_at
                if idle >= quiet:
                    return list(self._rows)
                if now >= deadline:
                    raise AssertionError(f"rows kept arriving for {timeout}s\n{self.describe()}")
                self._cond.wait(min(quiet - idle, deadline - now))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)


# --------------------------------------------------------------------------------------------
# Expected rows and matching


class Check:
    """A condition on one record value (`None`: the key is absent), for `ExpectedRow.fields`."""

    def __init__(self, text: str, predicate: Callable[[object], bool]) -> None:
        self.text, self.predicate = text, predicate

    def __call__(self, value: object) -> bool:
        return self.predicate(value)

    def __repr__(self) -> str:
        return self.text


def contains(fragment: str) -> Check:
    return Check(f"<text containing {fragment!r}>", lambda v: isinstance(v, str) and fragment in v)


def at_least(ms: float) -> Check:
    return Check(f"<>= {ms}>", lambda v: isinstance(v, (int, float)) and v >= ms)


PRESENT = Check("<present>", lambda v: v is not None)
IGNORED = Check("<anything>", lambda v: True)


@dataclass
class ExpectedRow:
    """One row the contract requires. `fields` are record keys: a plain value must be there,
    exactly (a string compares with the value's text: a request id may be a number); None:
    the key must be absent; a `Check`: the value must pass it. `session` is the session column,
    when known."""

    label: str  # what the client did, for failure messages
    fields: dict[str, object]
    session: str | None = None

    def mismatches(self, row: Row) -> list[str]:
        problems = []
        for key, want in self.fields.items():
            got = row.record.get(key)
            if isinstance(want, Check):
                if not want(got):
                    problems.append(f"{key} {got!r} is not {want!r}")
                continue
            if isinstance(want, str) and got is not None and not isinstance(got, str):
                got = str(got)
            if got != want:
                problems.append(f"{key} {got!r} != {want!r}")
        if self.session is not None and row.session != self.session:
            problems.append(f"session {row.session!r} != {self.session!r}")
        return problems

    @property
    def kind(self) -> str:
        return str(self.fields.get("kind") or "")

    def like(self, row: Row) -> bool:
        """`row` is about the same thing (shown beside a missing row): same kind and name."""
        kind = self.kind
        if row.kind != kind:
            return False
        if kind in HANDLER_KINDS:
            return row.name == self.fields.get(kind)
        if kind == "session":
            return row.event == self.fields.get("event")
        return row.method == self.fields.get("method")

    def short(self) -> str:
        fields = " ".join(f"{key}={value!r}" for key, value in self.fields.items())
        session = f" session={self.session!r}" if self.session is not None else ""
        return f"{fields}{session}  <- {self.label}"


def match_events(expected: Sequence[ExpectedRow], rows: Sequence[Row]) -> tuple[list[ExpectedRow], list[Row]]:
    """Pairs each expected row with a distinct row (a maximum bipartite matching, so that the
    order of arrival does not matter); returns what is left on either side."""
    candidates = [[j for j, row in enumerate(rows) if not exp.mismatches(row)] for exp in expected]
    owner: dict[int, int] = {}  # row index -> expected index

    def assign(i: int, seen: set[int]) -> bool:
        for j in candidates[i]:
            if j in seen:
                continue
            seen.add(j)
            if j not in owner or assign(owner[j], seen):
                owner[j] = i
                return True
        return False

    for i in range(len(expected)):
        assign(i, set())
    matched = set(owner.values())
    missing = [exp for i, exp in enumerate(expected) if i not in matched]
    extra = [row for j, row in enumerate(rows) if j not in owner]
    return missing, extra


def row_key(kind: str, method: str, event: str) -> tuple[str, str]:
    """(kind, method), or (session, event): what rows are counted by."""
    return kind, (event if kind == "session" else method) or "-"


def mismatch_report(expected: Sequence[ExpectedRow], rows: Sequence[Row], who: str = "") -> list[str]:
    """Every difference between the rows expected and those received: the counts per
    (kind, method) first, which say at a glance what is missing, then each expected row
    without its row (with the closest rows and how they differ), then each row left over."""
    prefix = f"{who}: " if who else ""
    lines = []
    want = Counter(row_key(e.kind, str(e.fields.get("method") or ""), str(e.fields.get("event") or "")) for e in expected)
    got = Counter(row_key(r.kind, r.method, r.event) for r in rows)
    for key in sorted(set(want) | set(got)):
        if want[key] != got[key]:
            lines.append(f"{prefix}{want[key]} rows of {key[0]} {key[1]} expected, {got[key]} received")
    missing, extra = match_events(expected, rows)
    for exp in missing:
        lines.append(f"{prefix}MISSING    {exp.short()}")
        for row in [row for row in rows if exp.like(row)][:4]:
            lines.append(f"             closest: {row.short()}\n               differs: {'; '.join(exp.mismatches(row))}")
    for row in extra:
        lines.append(f"{prefix}UNEXPECTED {row.short()}")
    return lines


def assert_rows_as_expected(expected: Sequence[ExpectedRow], rows: Sequence[Row], who: str = "") -> None:
    """Exactly one row per expected row, nothing else; fails listing expected and seen rows."""
    problems = mismatch_report(expected, rows, who)
    if problems:
        raise AssertionError(
            f"{len(expected)} rows expected, {len(rows)} received\n"
            + "\n".join(problems)
            + "\nrows received:\n"
            + ("\n".join(f"  {row.short()}" for row in rows) or "  (none)")
        )


def all_matched(expected: Sequence[ExpectedRow]) -> Callable[[list[Row]], bool]:
    """A `Receiver.wait_for` condition: every expected row arrived."""

    def every_expected_row_arrived(rows: list[Row]) -> bool:
        missing, _ = match_events(expected, rows)
        return not missing

    return every_expected_row_arrived


def await_rows(receiver: "Receiver", expected: Sequence[ExpectedRow], timeout: float = 5.0) -> list[Row]:
    """Waits until every expected row arrived, then until nothing more comes. When they do not
    all arrive in time, goes on with what came: the checks then say precisely what is missing."""
    try:
        receiver.wait_for(all_matched(expected), timeout=timeout)
    except AssertionError:
        pass
    rows = receiver.settle()
    assert not receiver.malformed, receiver.describe()
    assert not receiver.rejections, receiver.describe()
    return rows


# --------------------------------------------------------------------------------------------
# What a client sent (official Python SDK)


class SentLog:
    """Wraps the write stream a Python SDK `ClientSession` sends on, and keeps a summary of every
    JSON-RPC message it sends (type, id, method, params), so that a test knows each request's id
    and every notification the SDK sent on its own (`notifications/initialized`,
    `notifications/cancelled`, ...)."""

    def __init__(self, stream) -> None:
        self._stream = stream
        self.messages: list[dict] = []

    async def send(self, item, /) -> None:
        message = item.message
        summary: dict = {}
        if hasattr(message, "method"):
            summary["type"] = "request" if hasattr(message, "id") else "notification"
            summary["method"] = message.method
            summary["params"] = getattr(message, "params", None)
        else:
            summary["type"] = "response"
        if hasattr(message, "id"):
            summary["id"] = message.id
        self.messages.append(summary)
        await self._stream.send(item)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def __aenter__(self) -> "SentLog":
        await self._stream.__aenter__()
        return self

    async def __aexit__(self, *exc) -> bool | None:
        return await self._stream.__aexit__(*exc)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)

    def requests(self) -> list[dict]:
        return [m for m in self.messages if m["type"] == "request"]

    def notifications(self) -> list[dict]:
        return [m for m in self.messages if m["type"] == "notification"]

    def last_id(self, method: str) -> str:
        """The id of the last request of `method` sent, as text (the rows' `request_id`)."""
        ids = [m["id"] for m in self.requests() if m["method"] == method]
        assert ids, f"no {method} request was sent: {self.messages}"
        return str(ids[-1])


@dataclass
class Expectations:
    """The rows one client's connection must produce, from what the test did (`call`,
    `request`) and what the client sent (`SentLog`): every request the client sent that the
    test did not describe is expected as a plain successful request row.

    `client`: the client every row names (None: no row names one); `session`: the session column
    of every row, when known; `protocol`: the negotiated protocol version, set after initialize.
    """

    client: tuple[str, str] | None
    transport: str
    sent: SentLog | None = None
    session: str | None = None
    protocol: str | None = None
    sessions: bool = True  # whether the connection is a session (start and end rows)
    # Whether the server sees the client's notifications: rmcp's stateless streamable HTTP
    # answers them 202 and drops them (no server to deliver them to), so nothing records them.
    notifications: bool = True
    client_only_on_initialize: bool = False  # stateless HTTP: only `initialize` names the client
    items: dict[str, ExpectedRow] = field(default_factory=dict)  # by request id
    labels: list[str] = field(default_factory=list)

    def origin(self, method: str) -> dict[str, object]:
        client = self.client
        if self.client_only_on_initialize and method != "initialize":
            client = None
        fields: dict[str, object] = {"transport": self.transport}
        fields["client_name"], fields["client_version"] = client if client else (None, None)
        if self.protocol is not None:
            fields["protocol_version"] = self.protocol
        return fields

    def _add(self, label: str, method: str, fields: dict[str, object], request_id: str | None) -> None:
        assert self.sent is not None
        rid = request_id if request_id is not None else self.sent.last_id(method)
        assert rid not in self.items, f"{label}: request {rid} already expected as {self.items[rid].label}"
        self.items[rid] = ExpectedRow(label, {**fields, "request_id": rid})

    def call(
        self,
        label: str,
        kind: str,
        name: str,
        outcome: str,
        *,
        error_type: object = None,
        error: object = None,
        func_name: str | None = None,
        min_duration_ms: float = 0.0,
        request_id: str | None = None,
        **extra: object,
    ) -> None:
        """A handler call: `tools/call`, `prompts/get` or `resources/read`, just sent; `extra`:
        more record keys to check."""
        method = HANDLER_METHOD[kind]
        fields: dict[str, object] = {"kind": kind, "method": method, kind: name, "outcome": outcome}
        fields |= {"error_type": error_type, "error": error}
        if outcome == "error" and error is None:
            fields["error"] = PRESENT
        if func_name is not None:
            fields["funcName"] = func_name
        if min_duration_ms:
            fields["duration_ms"] = at_least(min_duration_ms)
        self._add(label, method, fields | extra | self.origin(method), request_id)

    def missing_capability(self, label: str, name: str, **extra: object) -> None:
        """A `tools/call` of the missing-capability tool, just sent: the wrapper answers it, and
        its row is a report, not a call of a tool; `extra`: more record keys to check."""
        fields: dict[str, object] = {"kind": MISSING_CAPABILITY, "method": "tools/call", "name": name}
        fields |= {"outcome": "ok", "tool": None, "error": None, "error_type": None, "funcName": "call_tool"}
        self._add(label, "tools/call", fields | extra | self.origin("tools/call"), None)

    def request(
        self,
        label: str,
        method: str,
        *,
        outcome: str = "ok",
        error_type: object = None,
        error: object = None,
        listed: object = None,
        request_id: str | None = None,
    ) -> None:
        """Any other request, just sent; `listed`: the names a listing row must carry (None:
        none)."""
        fields: dict[str, object] = {"kind": "request", "method": method, "outcome": outcome}
        fields |= {"error_type": error_type, "error": error if error is not None or outcome == "ok" else PRESENT}
        if method in LISTINGS:
            fields["listed"] = listed
        self._add(label, method, fields | self.origin(method), request_id)

    def rows(self) -> list[ExpectedRow]:
        """Every row expected: one per request sent, one per notification sent, the session's;
        each in `session` (as known now)."""
        assert self.sent is not None
        rows = []
        for message in self.sent.requests():
            rid = str(message["id"])
            if rid in self.items:
                rows.append(ExpectedRow(self.items[rid].label, self.items[rid].fields, self.session))
                continue
            method = message["method"]
            assert method not in KIND_OF_METHOD, f"a {method} request the test did not describe: {message}"
            fields = {"kind": "request", "method": method, "outcome": "ok", "error_type": None, "error": None}
            rows.append(ExpectedRow(f"{method} (sent by the SDK)", {**fields, "request_id": rid} | self.origin(method), self.session))
        unsent = set(self.items) - {str(m["id"]) for m in self.sent.requests()}
        assert not unsent, f"expected rows of requests never sent: {[self.items[i].label for i in unsent]}"
        for message in self.sent.notifications() if self.notifications else []:
            method = message["method"]
            fields = {"kind": "notification", "method": method, "outcome": "ok", "request_id": None}
            rows.append(ExpectedRow(f"sent {method}", fields | self.origin(method), self.session))
        if self.sessions:
            for event in ("start", "end"):
                fields = {"kind": "session", "event": event, "outcome": None, "request_id": None, "method": None}
                fields["duration_ms"] = PRESENT if event == "end" else None
                rows.append(ExpectedRow(f"session {event}", fields | self.origin("session"), self.session))
        return rows


def check_listings(rows: Sequence[Row], listed: dict[str, Iterable[str]]) -> None:
    """The first listing of each kind served by a fresh server process names what it listed;
    the later ones, which list the same, name nothing: exactly one row per listing method has
    `listed`, and it is what the client was given (in its order)."""
    problems = []
    for method, names in listed.items():
        with_names = [row for row in rows if row.method == method and row.listed is not None]
        if len(with_names) != 1 or with_names[0].listed != list(names):
            problems.append(
                f"{method}: expected one row listing {list(names)}, got "
                + (", ".join(str(row.listed) for row in with_names) or "none")
            )
    assert not problems, "\n".join(problems) + "\nrows:\n" + "\n".join(f"  {row.short()}" for row in rows)


def check_row_invariants(
    rows: Iterable[Row], version: str, window: tuple[datetime, datetime], slack: float = 2.0
) -> int:
    """Checks what every row must satisfy, whatever the request; returns how many rows it
    checked. Fails on the first row that breaks a rule, naming the rule and the row."""
    start, end = window[0] - timedelta(seconds=slack), window[1] + timedelta(seconds=slack)
    checked = 0
    for row in rows:
        record, kind = row.record, row.kind
        where = f"\n  row: {row.raw}"
        assert kind in KINDS, f"unknown kind {kind!r}{where}"
        required, allowed = KIND_KEYS[kind]
        keys = set(record)
        assert ALWAYS_KEYS | required <= keys, f"{kind} row without {sorted((ALWAYS_KEYS | required) - keys)}{where}"
        assert keys <= ALWAYS_KEYS | required | allowed, (
            f"keys {sorted(keys - ALWAYS_KEYS - required - allowed)} on a {kind} row{where}"
        )
        # A key without a value is left out, never sent empty.
        empty = sorted(key for key, value in record.items() if value in ("", None, []))
        assert not empty, f"keys sent empty: {empty}{where}"
        if kind != "session":
            assert record["funcName"], f"empty funcName{where}"
        assert record["appName"] == APP_NAME, where
        assert record["version"] == version, where
        assert TIMESTAMP_RE.match(row.timestamp), f"timestamp format{where}"
        assert start <= row.started_at() <= end, f"timestamp {row.timestamp} outside {start}..{end}{where}"
        # A task's row may outlive its request's transport; every other row knows it.
        assert row.transport in TRANSPORTS or (kind == "task" and not row.transport), f"transport{where}"
        for key in ("duration_ms", "handler_duration_ms"):
            if key in record:
                assert isinstance(record[key], (int, float)) and record[key] >= 0, f"{key}{where}"
        if "handler_duration_ms" in record:
            assert record["handler_duration_ms"] <= record["duration_ms"], f"handler_duration_ms > duration_ms{where}"
        if "request_id" in record:
            assert isinstance(record["request_id"], str), f"request_id is not a string{where}"
        if kind == "session":
            assert row.event in ("start", "end"), f"session event{where}"
            assert ("duration_ms" in record) == (row.event == "end"), f"duration_ms on a session {row.event}{where}"
            assert row.level == "info", f"level of a session row{where}"
            message = f"session {row.event}"
        else:
            assert row.outcome in OUTCOMES, f"outcome{where}"
            assert row.level == LEVEL_OF_OUTCOME[row.outcome], f"level for outcome {row.outcome}{where}"
            assert row.name, f"empty name{where}"
            message = f"{kind} {row.name}: {row.outcome}" + (f": {row.error}" if row.error else "")
        assert record["message"] == message, f"message != {message!r}{where}"
        if kind in HANDLER_KINDS:
            assert row.method == HANDLER_METHOD[kind], f"method of a {kind} row{where}"
        if kind in ("request", "notification"):
            assert row.method and row.method not in KIND_OF_METHOD, f"method of a {kind} row{where}"
        if kind == MISSING_CAPABILITY:
            assert row.method == "tools/call" and "tool" not in record, f"a report names no tool{where}"
        if kind == "notification":
            assert row.outcome == "ok", f"a notification's outcome{where}"
        if "listed" in record:
            listed = record["listed"]
            assert row.method in LISTINGS and isinstance(listed, list), f"listed on a {row.method} row{where}"
            assert all(isinstance(name, str) and name for name in listed), f"listed names{where}"
        # How a failure is told: error text and type on failed rows only.
        if row.outcome == "error":
            assert row.error, f"an error row without error text{where}"
            assert ERROR_TYPE_RE.match(row.error_type), f"error_type {row.error_type!r}{where}"
            assert row.error_type != "panic", f"error_type panic on an error row{where}"
            assert row.error_type != "tool_error" or kind == "tool", f"tool_error on a {kind} row{where}"
        elif row.outcome == "panic":
            assert row.error_type == "panic", f"error_type of a panic{where}"
        else:
            assert "error" not in record and "error_type" not in record, f"error on a {row.outcome or kind} row{where}"
        checked += 1
    return checked


def is_uuid_v4(text: str) -> bool:
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        return False
    return parsed.version == 4 and str(parsed) == text.lower()


def utc_now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------------
# The scripted client on the official MCP TypeScript SDK (ts/client.mjs)

TS_DIR = Path(__file__).resolve().parent / "ts"
CLIENT_SCRIPT = TS_DIR / "client.mjs"
SDK_PACKAGE = TS_DIR / "node_modules" / "@modelcontextprotocol" / "sdk" / "package.json"
# How long one client run may take: its own deadline is 45 s; the crash step alone waits 3 s.
CLIENT_TIMEOUT_S = 40
CRASH_TIMEOUT_MS = 3000

# The function whose attribute joins a handler call's row, in examples/demo_server.
FUNC_NAME = {"tools/call": lambda name: "call_tool", "prompts/get": lambda name: name, "resources/read": lambda uri: "read_resource"}


def node_command() -> list[str]:
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "node is missing: install Node.js 20 or later (e.g. `apt-get install nodejs npm`, or a "
            "release from nodejs.org), then run tests/run.sh, which runs `npm ci` in tests/e2e/ts",
            pytrace=False,
        )
    if not SDK_PACKAGE.is_file():
        pytest.fail(
            f"{SDK_PACKAGE} is missing: run `npm ci` in {TS_DIR} (tests/run.sh does it)",
            pytrace=False,
        )
    return [node, str(CLIENT_SCRIPT)]


def client_env(extra: dict[str, str]) -> dict[str, str]:
    """A minimal environment: nothing from the developer's shell reaches the server but PATH."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "NO_PROXY": "127.0.0.1,localhost"}
    env["no_proxy"] = env["NO_PROXY"]
    env.update(extra)
    return env


@dataclass
class ClientRun:
    """One run of client.mjs, started at once; `finish()` waits for it and parses its report."""

    name: str
    version: str
    args: list[str]
    env: dict[str, str]
    workdir: Path
    proc: subprocess.Popen = field(init=False)
    stderr_path: Path = field(init=False)
    report: dict = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.stderr_path = self.workdir / f"client-{self.name}.stderr"
        with open(self.stderr_path, "w") as stderr:
            self.proc = subprocess.Popen(
                [
                    *node_command(),
                    *self.args,
                    "--name",
                    self.name,
                    "--version",
                    self.version,
                    "--crash-timeout-ms",
                    str(CRASH_TIMEOUT_MS),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                cwd=self.workdir,  # no .env there
                env=self.env,
            )

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def finish(self) -> dict:
        try:
            stdout, _ = self.proc.communicate(timeout=CLIENT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate(timeout=5)
            raise AssertionError(
                f"client {self.name} still running after {CLIENT_TIMEOUT_S}s\nstderr:\n{self.stderr}"
            ) from None
        lines = stdout.splitlines()
        assert len(lines) == 1, (
            f"client {self.name} (exit {self.proc.returncode}) printed {len(lines)} lines on stdout, "
            f"not one JSON object:\n{stdout}\nstderr:\n{self.stderr}"
        )
        self.report = json.loads(lines[0])
        assert self.proc.returncode == 0 and self.report.get("completed"), (
            f"client {self.name} did not complete its script (exit {self.proc.returncode}): "
            f"{self.report.get('fatal')}\nsteps: {json.dumps(self.report.get('steps'), indent=1)}\n"
            f"stderr:\n{self.stderr}"
        )
        return self.report

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=5)


def answer(report: dict, request_id: object) -> dict | None:
    """What the client received in answer to its request `request_id`."""
    return next((m for m in report["received"] if m.get("id") == request_id and m["type"] != "request"), None)


def expected_rows(report: dict, session: str | None) -> list[ExpectedRow]:
    """The rows one client's session must have produced, from what it sent and saw."""
    rows = []
    client = report["client_info"]
    origin = {
        "client_name": client["name"],
        "client_version": client["version"],
        "protocol_version": report["protocol_version"],
    }
    for step in report["steps"]:
        method = step["method"]
        if method is None:
            continue
        request_id = step.get("request_id")
        assert request_id is not None, f"no request id for step {step}"
        fields: dict[str, object] = {"method": method, "request_id": str(request_id), **origin}
        seen = step["outcome"]
        got = answer(report, request_id)
        if seen == "error":
            # The row's error is the one the client got (its text may add the code).
            error = got["error"] if got and got["type"] == "error" else {}
            failed = {"outcome": "error", "error_type": str(step["error_code"]), "error": contains(error.get("message", "?"))}
        kind = KIND_OF_METHOD.get(method, "request")
        fields["kind"] = kind
        if kind in HANDLER_KINDS:
            params = step["params"]
            name = params["uri"] if kind == "resource" else params["name"]
            fields[kind] = name
            # The demo server's attributes join every handler call's row.
            fields |= {"funcName": FUNC_NAME[method](name), "handler_duration_ms": PRESENT}
            if seen == "result":
                fields |= {"outcome": "ok", "error_type": None, "error": None}
            elif seen == "is_error":
                fields |= {"outcome": "error", "error_type": "tool_error", "error": step["text"]}
            elif seen == "error":
                fields |= failed
            elif seen == "timeout" and params.get("name") == "crash":
                fields |= {"outcome": "panic", "error_type": "panic", "error": CRASH_MESSAGE}
            else:
                raise AssertionError(f"no expectation for a {seen!r} step: {step}")
        else:
            if seen == "result":
                fields |= {"outcome": "ok", "error_type": None, "error": None}
            elif seen == "error":
                fields |= failed
            else:
                raise AssertionError(f"no expectation for a {seen!r} step: {step}")
        rows.append(ExpectedRow(f"{step['step']} ({seen})", fields, session))
    for message in report["sent"]:
        if message["type"] == "notification":
            fields = {"kind": "notification", "method": message["method"], "outcome": "ok", "request_id": None}
            rows.append(ExpectedRow(f"sent {message['method']}", fields | origin, session))
    for event in ("start", "end"):
        fields = {"kind": "session", "event": event, "method": None, "outcome": None, "request_id": None}
        fields["duration_ms"] = PRESENT if event == "end" else None
        rows.append(ExpectedRow(f"session {event}", fields | origin, session))
    return rows


def texts(result: CallToolResult) -> list[str]:
    """The text blocks of a tool's result."""
    return [block.text for block in result.content if block.type == "text"]


def handle_of(result: CallToolResult) -> str | None:
    """The conversation handle a result hands out (the wrapper's `conversations(true)`): its last
    text block, `{"conversation_id": "…"}`."""
    blocks = texts(result)
    try:
        last = json.loads(blocks[-1]) if blocks else None
    except json.JSONDecodeError:
        return None
    return last.get("conversation_id") if isinstance(last, dict) else None


async def expect_mcp_error(awaitable: Awaitable[object]) -> MCPError:
    """The JSON-RPC error a client request must end with."""
    with pytest.raises(MCPError) as caught:
        await awaitable
    return caught.value
