"""Shared helpers of the end-to-end suite: the example binaries, the loopback Events API receiver,
the rows it prints, and matching the events it received against the calls a test made.

Every wait here is bounded and polls a condition (no bare sleeps); every process started here is
stopped by its owner's `stop()`, which the fixtures in `conftest.py` always call.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
import tomllib
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-token"
APP_NAME = "mcp-analytics-dev"
TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}$")
# Every key a record may have; a key without a value is left out, not sent empty.
RECORD_KEYS = {
    "appName",
    "funcName",
    "tool",
    "prompt",
    "resource",
    "version",
    "message",
    "kind",
    "outcome",
    "duration_ms",
    "error",
    "client_name",
    "client_version",
}
# The keys every record has.
ALWAYS_KEYS = {"appName", "funcName", "version", "message", "kind", "outcome", "duration_ms"}
KINDS = ("tool", "prompt", "resource")
# The template counts failed and panicked calls as errors; a cancelled call is not the server's.
LEVEL_OF_OUTCOME = {"ok": "info", "cancelled": "info", "error": "error", "panic": "error"}


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
        """The handler's name: the record field named after the event's kind."""
        return self.record.get(self.kind, "") if self.kind in KINDS else ""

    @property
    def outcome(self) -> str:
        return self.record.get("outcome", "")

    @property
    def error(self) -> str:
        return self.record.get("error", "")

    @property
    def duration_ms(self) -> float:
        return self.record.get("duration_ms", -1.0)

    @property
    def client(self) -> tuple[str, str]:
        return self.record.get("client_name", ""), self.record.get("client_version", "")

    def started_at(self) -> datetime:
        return datetime.strptime(self.timestamp, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)

    def short(self) -> str:
        return (
            f"{self.kind}/{self.name}/{self.outcome} level={self.level} error={self.error!r} "
            f"session={self.session} client={self.client} duration_ms={self.duration_ms}"
        )


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
# Expected events and matching


@dataclass
class Expected:
    """The event one call must have recorded."""

    label: str  # the call, for failure messages
    kind: str
    name: str
    outcome: str
    error: str | None = ""  # the exact error text; None: see error_contains
    error_contains: str | None = None  # a fragment the error text must contain (non-empty)
    min_duration_ms: float = 0.0
    session: str | None = None  # the session the event must carry, when known
    client: tuple[str, str] | None = None

    def mismatches(self, row: Row) -> list[str]:
        problems = []
        for what, want, got in (
            ("kind", self.kind, row.kind),
            ("name", self.name, row.name),
            ("outcome", self.outcome, row.outcome),
        ):
            if want != got:
                problems.append(f"{what} {got!r} != {want!r}")
        if self.error is not None and row.error != self.error:
            problems.append(f"error {row.error!r} != {self.error!r}")
        if self.error_contains is not None and (not row.error or self.error_contains not in row.error):
            problems.append(f"error {row.error!r} lacks {self.error_contains!r}")
        if row.duration_ms < self.min_duration_ms:
            problems.append(f"duration_ms {row.duration_ms} < {self.min_duration_ms}")
        if self.session is not None and row.session != self.session:
            problems.append(f"session {row.session!r} != {self.session!r}")
        if self.client is not None and row.client != self.client:
            problems.append(f"client {row.client!r} != {self.client!r}")
        return problems

    def short(self) -> str:
        error = repr(self.error) if self.error is not None else f"containing {self.error_contains!r}"
        return f"{self.kind}/{self.name}/{self.outcome} error {error}  <- {self.label}"


@dataclass
class Expectations:
    """The calls a test made, in order, each with the event it must have recorded."""

    client: tuple[str, str]
    session: str | None = None
    items: list[Expected] = field(default_factory=list)

    def expect(self, label: str, kind: str, name: str, outcome: str, **kwargs) -> None:
        kwargs.setdefault("client", self.client)
        kwargs.setdefault("session", self.session)
        self.items.append(Expected(label, kind, name, outcome, **kwargs))

    def __len__(self) -> int:
        return len(self.items)


def match_events(expected: Sequence[Expected], rows: Sequence[Row]) -> tuple[list[Expected], list[Row]]:
    """Pairs each expected event with a distinct row (a maximum bipartite matching, so that the
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


def assert_exactly_one_event_per_call(expected: Sequence[Expected], rows: Sequence[Row]) -> None:
    missing, extra = match_events(expected, rows)
    if not missing and not extra:
        return
    lines = [f"{len(expected)} calls made, {len(rows)} events received"]
    for exp in missing:
        lines.append(f"MISSING   {exp.short()}")
        near = [row for row in rows if (row.kind, row.name) == (exp.kind, exp.name)]
        for row in near:
            lines.append(f"          closest: {row.short()}: {'; '.join(exp.mismatches(row))}")
    for row in extra:
        lines.append(f"UNEXPECTED {row.short()}")
    raise AssertionError("\n".join(lines))


def check_row_invariants(
    rows: Iterable[Row], version: str, window: tuple[datetime, datetime], slack: float = 2.0
) -> int:
    """Checks what every row must satisfy, whatever the call; returns how many rows it checked."""
    start, end = window[0] - timedelta(seconds=slack), window[1] + timedelta(seconds=slack)
    checked = 0
    for row in rows:
        where = row.raw
        keys = set(row.record)
        assert ALWAYS_KEYS <= keys <= RECORD_KEYS, f"record keys {sorted(keys)} in {where}"
        assert "" not in row.record.values(), f"a key sent empty: {where}"
        assert row.record["appName"] == APP_NAME, where
        assert row.record["version"] == version, where
        assert TIMESTAMP_RE.match(row.timestamp), f"timestamp format: {where}"
        assert start <= row.started_at() <= end, f"timestamp {row.timestamp} outside {start}..{end}: {where}"
        assert row.kind in KINDS, where
        assert row.outcome in LEVEL_OF_OUTCOME, where
        assert row.level == LEVEL_OF_OUTCOME[row.outcome], f"level for outcome {row.outcome}: {where}"
        assert row.name, f"empty name: {where}"
        for other in KINDS:
            if other != row.kind:
                assert other not in row.record, f"`{other}` set on a {row.kind} event: {where}"
        assert row.record["funcName"], f"empty funcName: {where}"
        duration = row.record["duration_ms"]
        assert isinstance(duration, (int, float)) and duration >= 0, f"duration_ms: {where}"
        message = f"{row.kind} {row.name}: {row.outcome}" + (f": {row.error}" if row.error else "")
        assert row.record["message"] == message, f"message != {message!r}: {where}"
        if row.outcome == "error":
            assert row.error, f"an error event without error text: {where}"
        if row.outcome in ("ok", "panic"):
            assert row.error == "", f"error text on a {row.outcome} event: {where}"
        assert row.session, f"empty session: {where}"
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
