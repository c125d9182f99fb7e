"""The JSON endpoints of the Tinybird project (`tinybird/endpoints/*.pipe`), run on chdb with
their parameters, and checked against the rows they were computed from.

The dataset is what a deployment would hold: the real rows of `examples/metrics_workload` (its
calls and log lines), the rmcp wrapper's rows that are not calls (`wrapper_rows` of
test_tinybird.py), rows of the template's TypeScript and Python producers, and, built here in the
exact shape the crate sends (checked against the suite's row contract, `check_row_invariants`),
the rows of two more servers, one of them in two versions: sessions (one stateless, one whose
client never said who it is, one whose first call names no client), listings with handlers never
called, calls with a user, a model, a W3C trace and an agent's intent, failures, a panic, a
cancellation, rejected calls (an unknown tool, invalid arguments), missing-capability reports,
and rows older than a day, some of them inside an explicit `start`/`end` window.

Each endpoint is read with Tinybird's own template engine rendering its parameters (the default
range, `app_name`, `version`, an explicit window, and its own: `kind`, `limit`, `top`), and its
whole answer, row by row and in the order it promises, is compared with what the endpoint's
description says it is, computed here from the raw rows (each `record` parsed), never from chdb.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy
import pytest

from e2e_support import APP_NAME, HANDLER_KINDS, HANDLER_METHOD, LEVEL_OF_OUTCOME, check_row_invariants, parse_row
from test_tinybird import (  # noqa: F401 (`workload` is a fixture: imported, it serves this module too)
    TINYBIRD_DIR,
    Call,
    Workload,
    python_row,
    typescript_row,
    workload,
    wrapper_rows,
)
from tinybird_cli import TinybirdError, parse_datafiles
from tinybird_project import Project, Workspace

ENDPOINTS_DIR = TINYBIRD_DIR / "endpoints"
READ_TOKEN = "analytics_read"
# The Tinybird `DateTime` parameter's format, and ClickHouse's for `DateTime` values in JSON.
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"

# The servers built here: one in two versions, and another at the same version as its latest, so
# that `app_name` and `version` each matter, alone and together.
WEATHER, NOTES = "weather-server", "notes-server"
CURRENT, PREVIOUS = "1.1.0", "1.0.0"
SONNET, OPUS, GPT = "claude-sonnet-4", "claude-opus-4", "gpt-5.2"
# Who asked, as the wrapper records it (`OriginRecord`): a stateful HTTP session's client, an
# older one, a stdio client, and a stdio client that never said who it is.
HTTP = {"protocol_version": "2025-11-25", "transport": "tcp"}
STDIO = {"protocol_version": "2025-06-18", "transport": "pipe"}
CLAUDE = {"client_name": "claude-code", "client_version": "2.1.0", **HTTP}
CLAUDE_OLD = {**CLAUDE, "client_version": "2.0.0"}
CURSOR = {"client_name": "cursor", "client_version": "1.7.0", **HTTP}
DESKTOP = {"client_name": "claude-desktop", "client_version": "0.9.0", **STDIO}
ANONYMOUS = STDIO
# Stateless HTTP (2025-11-25): the requests after `initialize` do not say who sent them.
STATELESS = HTTP
# Keys of the wire format (mcp-analytics/src/wire/keys.rs) that the suite's example servers never
# send, so that its row contract (`check_row_invariants`) does not list them.
KEYS_BEYOND_THE_CONTRACT = ("model", "trace_id", "span_id", "user")

# Each endpoint's parameters: those of every endpoint, and its own.
COMMON_PARAMETERS = frozenset({"app_name", "version", "start", "end"})
OWN_PARAMETERS = {"api_tools": {"kind"}, "api_sessions": {"limit"}, "api_users": {"limit"}, "api_top_errors": {"top"}}
# Where a template names a parameter: `defined(name)`, `{{ Type(name, ...) }}`.
TEMPLATE_PARAMETER = re.compile(r"defined\((\w+)\)|\{\{\s*\w+\((\w+)")

# Markers in a case's parameters for the explicit window, known only once the dataset is made.
WINDOW_START, WINDOW_END = "<window start>", "<window end>"

# Columns rounded by the endpoint (`round(x, 3)`, `round(x, 4)`): compared within half a unit of
# the last digit kept. The quantiles are ClickHouse's `quantile`, a reservoir sampler that keeps
# every value up to 8192 of them and then interpolates linearly between the two closest ranks,
# which is exactly numpy's default (`linear`) method: so the tolerance is the rounding's, not an
# allowance for sampling (every handler here has far fewer than 8192 calls).
ROUNDED = {"p50_ms": 0.0005, "p95_ms": 0.0005, "p99_ms": 0.0005, "error_rate": 0.00005}
SLACK = 1e-9


# --------------------------------------------------------------------------------------------
# Rows of the rmcp wrapper, in the crate's shape


def stamp(at: datetime) -> str:
    """The wire format's timestamp: UTC, to the millisecond."""
    return at.strftime("%Y-%m-%d %H:%M:%S.") + f"{at.microsecond // 1000:03d}"


@dataclass
class Server:
    """One instrumented server (`instrument!` of the crate `app` at `version`): makes its rows
    with the keys in the order `CallRecord` writes them, keys without a value left out."""

    app: str
    version: str
    request_ids: Iterator[int] = dataclasses.field(default_factory=lambda: itertools.count(1))

    def row(self, at: datetime, session: str, kind: str, subject: str, **record: Any) -> dict:
        """A row of `kind` about `subject`: a handler's name, a method, a session's event."""
        outcome, error = record.get("outcome", ""), record.get("error", "")
        message = f"{kind} {subject}" + "".join(f": {part}" for part in (outcome, error) if part)
        func_name = record.pop("func_name", "")
        ordered: dict[str, Any] = {
            "appName": self.app,
            **({"funcName": func_name} if func_name else {}),
            **({kind: subject} if kind in HANDLER_KINDS else {}),
            "version": self.version,
            "message": message,
            "kind": kind,
        }
        for key in (
            "method", "name", "event", "outcome", "duration_ms", "error", "error_type",
            "client_name", "client_version", "protocol_version", "transport", "request_id",
            "model", "trace_id", "span_id", "intent", "conversation", "listed", "user",
        ):
            value = record.pop(key, None)
            if value not in (None, "", []):
                ordered[key] = value
        assert not record, f"unknown keys {sorted(record)}"
        level = LEVEL_OF_OUTCOME[outcome] if outcome else "info"
        record_text = json.dumps(ordered, separators=(",", ":"))
        return {"timestamp": stamp(at), "session": session, "level": level, "record": record_text}

    def next_request_id(self) -> str:
        return str(next(self.request_ids))

    def call(
        self,
        at: datetime,
        session: str,
        kind: str,
        name: str,
        origin: Mapping[str, str],
        outcome: str = "ok",
        duration_ms: float = 1.0,
        *,
        error: str = "",
        error_type: str = "",
        trace: int | None = None,
        **more: Any,
    ) -> dict:
        """A handler call (`tools/call`, `prompts/get`, `resources/read`): rmcp's own function
        for a rejected call, the handler's otherwise. A failed call has its error text and type;
        a panic's type is `panic`."""
        if outcome == "panic":
            error_type = "panic"
        func_name = "call_tool" if error_type.startswith("-") else name.replace("-", "_")
        if trace is not None:
            more |= {"trace_id": f"{trace:032x}", "span_id": f"{trace + 1:016x}"}
        return self.row(
            at, session, kind, name, func_name=func_name, method=HANDLER_METHOD[kind], outcome=outcome,
            duration_ms=duration_ms, error=error, error_type=error_type, request_id=self.next_request_id(),
            **origin, **more,
        )

    def request(
        self, at: datetime, session: str, method: str, origin: Mapping[str, str], func_name: str, **more: Any
    ) -> dict:
        """Any other request (`initialize`, a listing with its `listed` names, `ping`, ...)."""
        more.setdefault("outcome", "ok")
        more.setdefault("duration_ms", 0.2)
        return self.row(
            at, session, "request", method, func_name=func_name, method=method, request_id=self.next_request_id(),
            **origin, **more,
        )

    def notification(self, at: datetime, session: str, method: str, origin: Mapping[str, str]) -> dict:
        return self.row(
            at, session, "notification", method, func_name="on_initialized", method=method, outcome="ok",
            duration_ms=0.01, **origin,
        )

    def session_event(self, at: datetime, session: str, event: str, origin: Mapping[str, str], **more: Any) -> dict:
        return self.row(at, session, "session", event, event=event, **origin, **more)

    def missing_capability(self, at: datetime, session: str, intent: str, origin: Mapping[str, str]) -> dict:
        """An agent's report that it found no tool for what it wanted (`intent`)."""
        return self.row(
            at, session, "missing_capability", "get_more_tools", func_name="call_tool", method="tools/call",
            name="get_more_tools", outcome="ok", duration_ms=0.03, request_id=self.next_request_id(),
            intent=intent, **origin,
        )


def assert_in_the_crates_shape(rows: Iterable[dict]) -> None:
    """The rows made here satisfy the suite's contract of the wrapper's rows (keys per kind,
    levels, messages, error keys), which pins the app to the suite's own: checked under that
    name, and without the keys the example servers never send."""
    for row in rows:
        parsed = parse_row(json.dumps(row))
        record = {key: value for key, value in parsed.record.items() if key not in KEYS_BEYOND_THE_CONTRACT}
        at = parsed.started_at()
        as_suite = dataclasses.replace(parsed, record={**record, "appName": APP_NAME})
        check_row_invariants([as_suite], record["version"], (at, at))


# --------------------------------------------------------------------------------------------
# The dataset


@dataclass(frozen=True)
class Sent:
    """One row as its landing datasource stores it: the time to the second (`DateTime` columns
    drop the milliseconds), session, level and the record's keys. The template's Python handler's
    rows (`mcp_logs_python`) are mapped onto the same keys."""

    at: datetime  # UTC, naive
    session: str
    level: str
    record: dict
    landing: str = "mcp_logs"

    @classmethod
    def from_logs(cls, row: dict) -> Sent:
        return cls(to_second(row["timestamp"]), row["session"], row["level"], json.loads(row["record"]))

    @classmethod
    def from_python(cls, row: dict) -> Sent:
        extra = row["extra"]
        record = {
            "appName": row["app_name"],
            "version": extra.get("mcp_server_version") or "",
            **{key: extra[key] for key in ("tool", "prompt", "resource") if extra.get(key)},
        }
        return cls(to_second(row["asctime"]), extra["session"], row["levelname"], record, "mcp_logs_python")

    def get(self, key: str) -> Any:
        """A record key as the pipes read it: `''` when missing (`JSONExtractString`)."""
        return self.record.get(key, "")

    @property
    def kind(self) -> str:
        return self.get("kind")

    @property
    def app(self) -> tuple[str, str]:
        return self.get("appName"), self.get("version")

    @property
    def handler(self) -> str:
        """A handler call's name: its tool, prompt or resource."""
        return self.get(self.kind) if self.kind in HANDLER_KINDS else ""

    @property
    def name(self) -> str:
        """`mcp_requests.name`: the handler, or what a missing-capability report names."""
        return self.handler if self.kind in HANDLER_KINDS else self.get("name")

    @property
    def method(self) -> str:
        return self.get("method") or HANDLER_METHOD.get(self.kind, "")

    @property
    def failed(self) -> bool:
        """A failed call: mcp-analytics records an outcome; the template's producers only a level."""
        if self.kind == "":
            return self.level in ("error", "ERROR")
        return self.get("outcome") in ("error", "panic")


def to_second(text: str) -> datetime:
    """A timestamp as a `DateTime` column stores it: UTC, the fraction of a second dropped."""
    parsed = datetime.fromisoformat(text)
    return (parsed.astimezone(UTC) if parsed.tzinfo else parsed).replace(tzinfo=None, microsecond=0)


def text(at: datetime) -> str:
    return at.strftime(DATETIME_FORMAT)


@dataclass(frozen=True)
class Dataset:
    """Every row appended, and the times the cases refer to."""

    now: datetime  # naive UTC
    window: tuple[datetime, datetime]
    sent: tuple[Sent, ...]
    # The rows as appended to `mcp_logs` and `mcp_logs_python`.
    sent_logs: tuple[dict, ...]
    sent_python: tuple[dict, ...]

    def resolve(self, params: Mapping[str, str]) -> dict[str, str]:
        markers = {WINDOW_START: text(self.window[0]), WINDOW_END: text(self.window[1])}
        return {key: markers.get(value, value) for key, value in params.items()}

    @property
    def logs(self) -> list[Sent]:
        return [row for row in self.sent if row.landing == "mcp_logs"]

    @property
    def calls(self) -> list[Sent]:
        """`mcp_calls`: every producer's handler calls; log lines and the wrapper's other rows
        are not calls."""
        return [row for row in self.sent if row.kind in ("", *HANDLER_KINDS)]

    @property
    def requests(self) -> list[Sent]:
        """`mcp_requests`: what mcp-analytics recorded of each request and notification."""
        kinds = (*HANDLER_KINDS, "request", "notification", "missing_capability")
        return [row for row in self.logs if row.kind in kinds]


@dataclass(frozen=True)
class Query:
    """An endpoint's common parameters: `[start, end)` (the last 24 hours by default), and the
    app and version, all when left out."""

    start: datetime
    end: datetime
    app: str | None
    version: str | None

    @classmethod
    def of(cls, params: Mapping[str, str], now: datetime) -> Query:
        start = datetime.strptime(params["start"], DATETIME_FORMAT) if "start" in params else now - timedelta(days=1)
        end = datetime.strptime(params["end"], DATETIME_FORMAT) if "end" in params else now + timedelta(minutes=1)
        return cls(start, end, params.get("app_name"), params.get("version"))

    def server(self, row: Sent) -> bool:
        app, version = row.app
        return self.app in (None, app) and self.version in (None, version)

    def keeps(self, row: Sent) -> bool:
        return self.start <= row.at < self.end and self.server(row)


def grouped(rows: Iterable[Sent], key: Callable[[Sent], tuple]) -> dict[tuple, list[Sent]]:
    groups: dict[tuple, list[Sent]] = defaultdict(list)
    for row in rows:
        groups[key(row)].append(row)
    return groups


def quantile(rows: list[Sent], level: float) -> float:
    """ClickHouse's `quantile(level)` of the rows' durations: exact below 8192 values (see ROUNDED)."""
    durations = [row.record["duration_ms"] for row in rows]
    assert len(durations) < 8192, "past its reservoir, ClickHouse's quantile samples"
    return float(numpy.quantile(durations, level, method="linear"))


def last(rows: list[Sent], value: Callable[[Sent], Any]) -> Any:
    """`argMax(value, datetime)`: the value of the latest row. Rows are stored to the second, so
    every row of the last second must agree on it, or the answer would be the order of arrival."""
    latest = max(row.at for row in rows)
    values = {json.dumps(value(row)) for row in rows if row.at == latest}
    assert len(values) == 1, f"rows of the same second disagree: {values}; the dataset must not make them"
    return json.loads(values.pop())


def distinct(values: Iterable[str]) -> int:
    return len({value for value in values if value != ""})


def limited(rows: list[dict], limit: int, by: Callable[[dict], tuple] | None = None) -> list[dict]:
    """`LIMIT n`, or `LIMIT n BY key`: the first `n` rows of each key, in order."""
    if by is None:
        return rows[:limit]
    seen: dict[tuple, int] = defaultdict(int)
    kept = []
    for row in rows:
        seen[by(row)] += 1
        if seen[by(row)] <= limit:
            kept.append(row)
    return kept


# --------------------------------------------------------------------------------------------
# What each endpoint must answer, from its description


def expect_tools(data: Dataset, params: Mapping[str, str]) -> list[dict]:
    """Each handler's calls recorded by mcp-analytics, most calls first; `kind` keeps one kind."""
    query = Query.of(params, data.now)
    calls = [
        row for row in data.calls
        if query.keeps(row) and row.kind in HANDLER_KINDS and params.get("kind") in (None, row.kind)
    ]
    rows = []
    for (app, version, kind, name), group in grouped(calls, lambda r: (*r.app, r.kind, r.handler)).items():
        outcomes = [row.get("outcome") for row in group]
        failures = sum(outcome in ("error", "panic") for outcome in outcomes)
        rows.append({
            "app_name": app, "version": version, "kind": kind, "name": name,
            "calls": len(group),
            "errors": outcomes.count("error"),
            "panics": outcomes.count("panic"),
            "cancelled": outcomes.count("cancelled"),
            "error_rate": failures / len(group),
            "p50_ms": quantile(group, 0.5),
            "p95_ms": quantile(group, 0.95),
            "p99_ms": quantile(group, 0.99),
            "last_call": text(max(row.at for row in group)),
        })
    return sorted(rows, key=lambda r: (-r["calls"], r["kind"], r["name"], r["app_name"], r["version"]))


def expect_methods(data: Dataset, params: Mapping[str, str]) -> list[dict]:
    """Every method's requests: handler calls, the wrapper's other requests, notifications and
    missing-capability reports (a `tools/call` too). A panic is a failed request."""
    query = Query.of(params, data.now)
    rows = []
    for (app, version, method), group in grouped(
        (row for row in data.requests if query.keeps(row)), lambda r: (*r.app, r.method)
    ).items():
        rows.append({
            "app_name": app, "version": version, "method": method,
            "requests": len(group),
            "errors": sum(row.get("outcome") in ("error", "panic") for row in group),
            "p50_ms": quantile(group, 0.5),
            "p95_ms": quantile(group, 0.95),
        })
    return sorted(rows, key=lambda r: (-r["requests"], r["method"], r["app_name"], r["version"]))


def expect_sessions(data: Dataset, params: Mapping[str, str]) -> list[dict]:
    """The sessions with handler calls, most calls first, stateless calls (no session) left out;
    the client is the one the session's calls name (a call recorded without the request's
    context names none)."""
    query = Query.of(params, data.now)
    calls = [row for row in data.calls if query.keeps(row) and row.session != ""]
    rows = []
    for (app, version, session), group in grouped(calls, lambda r: (*r.app, r.session)).items():
        named = [row for row in group if row.get("client_name")]
        client = last(named, lambda row: (row.get("client_name"), row.get("client_version"))) if named else ("", "")
        first, latest = min(row.at for row in group), max(row.at for row in group)
        rows.append({
            "app_name": app, "version": version, "session": session,
            "client_name": client[0],
            "client_version": client[1],
            "calls": len(group),
            "errors": sum(row.failed for row in group),
            "first_call": text(first),
            "last_call": text(latest),
            "active_seconds": int((latest - first).total_seconds()),
        })
    rows.sort(key=lambda r: (-r["calls"], r["session"], r["app_name"], r["version"]))
    return limited(rows, int(params.get("limit", 100)))


def expect_clients(data: Dataset, params: Mapping[str, str]) -> list[dict]:
    """Requests per client, version and protocol; `unknown` where the client did not say."""
    query = Query.of(params, data.now)

    def client(row: Sent) -> tuple:
        return (
            *row.app, row.get("client_name") or "unknown", row.get("client_version") or "unknown",
            row.get("protocol_version"),
        )

    rows = []
    for (app, version, name, client_version, protocol), group in grouped(
        (row for row in data.requests if query.keeps(row)), client
    ).items():
        rows.append({
            "app_name": app, "version": version, "client_name": name, "client_version": client_version,
            "protocol_version": protocol,
            "requests": len(group),
            "sessions": distinct(row.session for row in group),
            "first_request": text(min(row.at for row in group)),
            "last_request": text(max(row.at for row in group)),
        })
    return sorted(rows, key=lambda r: (
        -r["requests"], r["client_name"], r["client_version"], r["app_name"], r["version"], r["protocol_version"],
    ))


def expect_rejected_calls(data: Dataset, params: Mapping[str, str]) -> list[dict]:
    """Handler calls answered with a JSON-RPC error (a negative code), by the name the client
    sent, with the last error text."""
    query = Query.of(params, data.now)
    rejected = [
        row for row in data.requests
        if query.keeps(row) and row.kind in HANDLER_KINDS and row.get("error_type").startswith("-")
    ]
    rows = []
    for (app, version, method, name, error_type), group in grouped(
        rejected, lambda r: (*r.app, r.method, r.name, r.get("error_type"))
    ).items():
        rows.append({
            "app_name": app, "version": version, "method": method, "name": name, "error_type": error_type,
            "calls": len(group),
            "last_error": last(group, lambda row: row.get("error")),
            "last_seen": text(max(row.at for row in group)),
        })
    return sorted(rows, key=lambda r: (
        -r["calls"], r["name"], r["app_name"], r["version"], r["method"], r["error_type"],
    ))


def expect_never_called(data: Dataset, params: Mapping[str, str]) -> list[dict]:
    """What a server listed (ever: a listing is sent when it changes) and no client called in
    the range, per version."""
    query = Query.of(params, data.now)
    listed_kind = {"tools/list": "tool", "prompts/list": "prompt", "resources/list": "resource"}
    listings: dict[tuple, list[datetime]] = defaultdict(list)
    for row in data.logs:
        if row.kind == "request" and row.method in listed_kind and query.server(row):
            for name in row.record.get("listed", []):
                listings[(*row.app, listed_kind[row.method], name)].append(row.at)
    called = {(*row.app, row.kind, row.handler) for row in data.calls if query.start <= row.at < query.end}
    rows = [
        {
            "app_name": app, "version": version, "kind": kind, "name": name,
            "first_listed": text(min(times)), "last_listed": text(max(times)),
        }
        for (app, version, kind, name), times in listings.items()
        if (app, version, kind, name) not in called
    ]
    return sorted(rows, key=lambda r: (r["app_name"], r["version"], r["kind"], r["name"]))


def expect_top_errors(data: Dataset, params: Mapping[str, str]) -> list[dict]:
    """Each handler's most frequent error texts (`top`, 5 by default), with the trace id of the
    last failure."""
    query = Query.of(params, data.now)
    failed = [row for row in data.calls if query.keeps(row) and row.get("outcome") in ("error", "panic")]
    rows = []
    for (app, version, kind, name, outcome, error_type, error), group in grouped(
        failed, lambda r: (*r.app, r.kind, r.handler, r.get("outcome"), r.get("error_type"), r.get("error"))
    ).items():
        rows.append({
            "app_name": app, "version": version, "kind": kind, "name": name, "outcome": outcome,
            "error_type": error_type, "error": error,
            "failures": len(group),
            "last_seen": text(max(row.at for row in group)),
            "last_trace_id": last(group, lambda row: row.get("trace_id")),
        })
    rows.sort(key=lambda r: (
        -r["failures"], -to_second(r["last_seen"]).timestamp(), r["error"],
        r["app_name"], r["version"], r["kind"], r["name"], r["outcome"], r["error_type"],
    ))
    return limited(rows, int(params.get("top", 5)), by=lambda r: (r["app_name"], r["version"], r["kind"], r["name"]))


def expect_models(data: Dataset, params: Mapping[str, str]) -> list[dict]:
    """Handler calls per model, where the client said, with distinct sessions and users."""
    query = Query.of(params, data.now)
    rows = []
    for (app, version, model), group in grouped(
        (row for row in data.calls if query.keeps(row) and row.get("model")), lambda r: (*r.app, r.get("model"))
    ).items():
        rows.append({
            "app_name": app, "version": version, "model": model,
            "calls": len(group),
            "sessions": distinct(row.session for row in group),
            "users": distinct(row.get("user") for row in group),
        })
    return sorted(rows, key=lambda r: (-r["calls"], r["model"], r["app_name"], r["version"]))


def expect_users(data: Dataset, params: Mapping[str, str]) -> list[dict]:
    """The users with handler calls, most calls first: errors, distinct tools, last call."""
    query = Query.of(params, data.now)
    rows = []
    for (app, version, user), group in grouped(
        (row for row in data.calls if query.keeps(row) and row.get("user")), lambda r: (*r.app, r.get("user"))
    ).items():
        rows.append({
            "app_name": app, "version": version, "user": user,
            "calls": len(group),
            "errors": sum(row.get("outcome") in ("error", "panic") for row in group),
            "tools": distinct(row.handler for row in group if row.kind == "tool"),
            "last_call": text(max(row.at for row in group)),
        })
    rows.sort(key=lambda r: (-r["calls"], r["user"], r["app_name"], r["version"]))
    return limited(rows, int(params.get("limit", 100)))


def expect_missing_capabilities(data: Dataset, params: Mapping[str, str]) -> list[dict]:
    """What agents reported finding no tool for, by what they wanted."""
    query = Query.of(params, data.now)
    reports = [row for row in data.requests if query.keeps(row) and row.kind == "missing_capability"]
    rows = [
        {"app_name": app, "version": version, "intent": intent, "reports": len(group),
         "last_seen": text(max(row.at for row in group))}
        for (app, version, intent), group in grouped(reports, lambda r: (*r.app, r.get("intent"))).items()
    ]
    return sorted(rows, key=lambda r: (-r["reports"], r["intent"], r["app_name"], r["version"]))


def expect_health(data: Dataset, params: Mapping[str, str]) -> list[dict]:
    """Every row that reached `mcp_logs`, whatever its kind, per app, version and kind; the range
    is in whole hours: the hours that start in `[start, end)`."""
    query = Query.of(params, data.now)

    def hour(row: Sent) -> datetime:
        return row.at.replace(minute=0, second=0)

    kept = [row for row in data.logs if query.start <= hour(row) < query.end and query.server(row)]
    rows = [
        {"app_name": app, "version": version, "kind": kind, "rows": len(group),
         "last_row": text(max(row.at for row in group))}
        for (app, version, kind), group in grouped(kept, lambda r: (*r.app, r.kind)).items()
    ]
    return sorted(rows, key=lambda r: (r["app_name"], r["version"], r["kind"]))


# --------------------------------------------------------------------------------------------
# The cases: every endpoint, with its parameters


@dataclass(frozen=True)
class Case:
    name: str
    params: Mapping[str, str]


COMMON = (
    Case("default", {}),
    Case("app_name", {"app_name": WEATHER}),
    Case("version", {"version": PREVIOUS}),
    Case("window", {"start": WINDOW_START, "end": WINDOW_END}),
)
CASES: dict[str, tuple[Case, ...]] = {
    "api_tools": (
        *COMMON,
        Case("kind", {"kind": "prompt"}),
        Case("kind_app_version", {"kind": "tool", "app_name": WEATHER, "version": CURRENT}),
    ),
    "api_methods": (*COMMON, Case("app_version", {"app_name": WEATHER, "version": CURRENT})),
    "api_sessions": (
        *COMMON,
        Case("limit", {"limit": "3"}),
        Case("limit_app", {"limit": "2", "app_name": WEATHER}),
    ),
    "api_clients": COMMON,
    "api_rejected_calls": COMMON,
    "api_never_called": (
        *COMMON,
        Case("app_version_window", {"app_name": WEATHER, "version": CURRENT, "start": WINDOW_START, "end": WINDOW_END}),
    ),
    "api_top_errors": (*COMMON, Case("top", {"top": "1"}), Case("top_app", {"top": "2", "app_name": WEATHER})),
    "api_models": COMMON,
    "api_users": (*COMMON, Case("limit", {"limit": "2"})),
    "api_missing_capabilities": COMMON,
    "api_health": (*COMMON, Case("app_version", {"app_name": WEATHER, "version": CURRENT})),
}
EXPECTED: dict[str, Callable[[Dataset, Mapping[str, str]], list[dict]]] = {
    "api_tools": expect_tools,
    "api_methods": expect_methods,
    "api_sessions": expect_sessions,
    "api_clients": expect_clients,
    "api_rejected_calls": expect_rejected_calls,
    "api_never_called": expect_never_called,
    "api_top_errors": expect_top_errors,
    "api_models": expect_models,
    "api_users": expect_users,
    "api_missing_capabilities": expect_missing_capabilities,
    "api_health": expect_health,
}


# --------------------------------------------------------------------------------------------
# Fixtures


def weather_rows(now: datetime) -> list[dict]:
    """The second server's rows. No two rows that an endpoint's `argMax` or `max` could pick
    between share a second: which of them came last would be the order of arrival."""

    def ago(hours: float, seconds: int = 0) -> datetime:
        return now - timedelta(hours=hours, seconds=seconds)

    current, previous, notes = Server(WEATHER, CURRENT), Server(WEATHER, PREVIOUS), Server(NOTES, CURRENT)
    tool, resource = "tool", "resource"
    ada, carol = {"user": "u-ada", "model": SONNET}, {"user": "u-carol", "model": SONNET}
    return [
        # A stateful HTTP session of 1.1.0: the handshake, the listings (`history` is called only
        # more than a day ago, `radar` and the prompt never), calls, failures, rejections.
        current.session_event(ago(3, 0), "w-claude", "start", CLAUDE),
        current.request(ago(3, -1), "w-claude", "initialize", CLAUDE, "initialize", duration_ms=0.05),
        current.notification(ago(3, -2), "w-claude", "notifications/initialized", CLAUDE),
        current.request(ago(3, -3), "w-claude", "tools/list", CLAUDE, "list_tools", duration_ms=0.4,
                        listed=["forecast", "alerts", "history", "radar"]),
        current.request(ago(3, -4), "w-claude", "prompts/list", CLAUDE, "list_prompts", listed=["daily-brief"]),
        current.request(ago(3, -5), "w-claude", "resources/list", CLAUDE, "list_resources",
                        listed=["weather://stations"]),
        *[
            current.call(ago(2, 10 + i), "w-claude", tool, "forecast", CLAUDE, duration_ms=ms, trace=100 + i, **ada)
            for i, ms in enumerate([12.5, 30.25, 7.125, 101.0])
        ],
        # What the agent said of a call (the wrapper's agent options): no missing capability.
        current.call(ago(2, 15), "w-claude", tool, "forecast", CLAUDE, duration_ms=9.0, intent="plan a picnic",
                     conversation="0190b0a8-4c1e-7000-8000-5b2f3a1d9e02", **ada),
        current.call(ago(2, 20), "w-claude", tool, "forecast", CLAUDE, "error", 250.0, error="upstream timeout",
                     error_type="tool_error", trace=200, **ada),
        current.call(ago(1, 20), "w-claude", tool, "forecast", CLAUDE, "error", 260.0, error="upstream timeout",
                     error_type="tool_error", trace=300, **ada),
        # The last failure of this text carries no trace: its last_trace_id is ''.
        current.call(ago(2, 30), "w-claude", tool, "forecast", CLAUDE, "error", 3.0,
                     error="city not found: Atlantis", error_type="tool_error", trace=400, **ada),
        current.call(ago(1, 30), "w-claude", tool, "forecast", CLAUDE, "error", 3.5,
                     error="city not found: Atlantis", error_type="tool_error", **ada),
        current.call(ago(1, 40), "w-claude", tool, "forecast", CLAUDE, "error", 0.4,
                     error="invalid arguments: missing field `city`", error_type="-32602", **ada),
        current.call(ago(2, 50), "w-claude", tool, "alerts", CLAUDE, "panic", 2.0, error="index out of bounds",
                     **ada),
        current.call(ago(2, 55), "w-claude", tool, "alerts", CLAUDE, "cancelled", 900.0, **ada),
        # An unknown tool (a typo), never listed: rejected by rmcp before any handler runs.
        current.call(ago(2, 5), "w-claude", tool, "forcast", CLAUDE, "error", 0.2,
                     error="tool not found: forcast", error_type="-32602", **ada),
        current.call(ago(1, 5), "w-claude", tool, "forcast", CLAUDE, "error", 0.3, error="unknown tool: forcast",
                     error_type="-32602", trace=500, **ada),
        current.call(ago(2, 60), "w-claude", resource, "weather://stations", CLAUDE, duration_ms=3.5, **ada),
        current.request(ago(2, 65), "w-claude", "ping", CLAUDE, "ping", outcome="error", duration_ms=0.02,
                        error="internal error", error_type="-32603"),
        current.missing_capability(ago(2, 70), "w-claude", "convert currencies", CLAUDE),
        current.missing_capability(ago(1, 70), "w-claude", "convert currencies", CLAUDE),
        current.missing_capability(ago(1, 75), "w-claude", "historical rainfall", CLAUDE),
        current.session_event(ago(0.5), "w-claude", "end", CLAUDE, duration_ms=9_000_000.0),
        # Stateless HTTP: no session; the client is known on the initialize row only.
        current.request(ago(4, 0), "", "initialize", CURSOR, "initialize", duration_ms=0.06),
        current.call(ago(4, -1), "", tool, "forecast", STATELESS, duration_ms=5.0, user="u-bob", model=GPT),
        current.call(ago(4, -2), "", tool, "forecast", STATELESS, duration_ms=6.0, user="u-bob", model=GPT),
        current.call(ago(4, -3), "", tool, "forecast", STATELESS, "error", 240.0, error="upstream timeout",
                     error_type="tool_error", user="u-bob", model=GPT, trace=600),
        # A stdio client that never said who it is.
        current.call(ago(6, 0), "w-stdio", tool, "alerts", ANONYMOUS, duration_ms=1.5, user="u-ada"),
        current.call(ago(6, -1), "w-stdio", tool, "alerts", ANONYMOUS, duration_ms=2.5, user="u-ada"),
        # The process session of a stdio server: a handler recorded without the request's
        # context (no client), then one through the wrapper.
        current.call(ago(7, 0), "w-process", tool, "alerts", {"transport": "pipe"}, duration_ms=1.0),
        current.call(ago(7, -1), "w-process", tool, "alerts", DESKTOP, duration_ms=1.25),
        # The previous version, still serving a few clients.
        previous.call(ago(5, 0), "w-prev", tool, "forecast", CLAUDE_OLD, duration_ms=8.0, **carol),
        previous.call(ago(5, 20), "w-prev", tool, "forcast", CLAUDE_OLD, "error", 0.2,
                      error="tool not found: forcast", error_type="-32602", **carol),
        previous.missing_capability(ago(5, 10), "w-prev", "convert currencies", CLAUDE_OLD),
        # More than a day ago, inside the explicit window.
        previous.request(ago(30, 0), "w-old", "tools/list", CLAUDE_OLD, "list_tools",
                         listed=["forecast", "history", "alerts"]),
        previous.call(ago(30, -5), "w-old", tool, "forecast", CLAUDE_OLD, duration_ms=40.0, **carol),
        previous.call(ago(30, -6), "w-old", tool, "history", CLAUDE_OLD, duration_ms=55.0, **carol),
        current.call(ago(30, -10), "w-claude-old", tool, "history", CLAUDE, duration_ms=45.0, user="u-ada", model=OPUS),
        current.missing_capability(ago(30, -20), "w-claude-old", "convert currencies", CLAUDE),
        current.call(ago(30, -30), "w-claude-old", tool, "forcast", CLAUDE, "error", 0.25,
                     error="tool not found: forcast", error_type="-32602", user="u-ada", model=OPUS, trace=700),
        # Another server, at the same version as the first's latest; the same user and model.
        notes.request(ago(8, 0), "n-1", "tools/list", CURSOR, "list_tools", listed=["search-notes", "delete-note"]),
        notes.call(ago(8, -1), "n-1", tool, "search-notes", CURSOR, duration_ms=4.0, **ada),
        notes.call(ago(8, -2), "n-1", tool, "delete-notes", CURSOR, "error", 0.1,
                   error="tool not found: delete-notes", error_type="-32602", **ada),
        notes.missing_capability(ago(8, -3), "n-1", "export to pdf", CURSOR),
        # Before the window, and out of the default range.
        previous.call(ago(40, 0), "w-older", tool, "forecast", CLAUDE_OLD, "error", 10.0, error="upstream timeout",
                      error_type="tool_error", user="u-dan", model=SONNET),
    ]


def template_rows(now: datetime) -> tuple[list[dict], list[dict]]:
    """Rows of the template's producers: the TypeScript logger's (`mcp_logs`, no `kind`; one at
    level error, one older than a day) and the Python handler's (`mcp_logs_python`)."""
    ts = dict(app="ts-server", version="1.4.0", tool="run-select-query", prompt="", resource="", session="ts-1")
    typescript = [
        typescript_row(Call(level="info", **ts), now - timedelta(hours=1)),
        typescript_row(Call(level="error", **ts), now - timedelta(hours=1, seconds=-1)),
        typescript_row(Call(level="info", **ts), now - timedelta(hours=30)),
    ]
    py = dict(app="py-server", version="0.1.4", prompt="", resource="", session="py-1")
    python = [
        python_row(Call(tool="run-select-query", level="INFO", **py), now - timedelta(hours=2)),
        python_row(Call(tool="run-select-query", level="ERROR", **py), now - timedelta(hours=2, seconds=-1)),
    ]
    return typescript, python


def hour_start(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


@pytest.fixture(scope="module")
def dataset(workload: Workload) -> Dataset:
    now = datetime.now(UTC)
    # Whole hours, so that `api_health` (hourly) and the other endpoints keep the same rows.
    window = (hour_start(now) - timedelta(hours=33), hour_start(now) - timedelta(hours=27))
    weather = weather_rows(now)
    assert_in_the_crates_shape(weather)
    typescript, python = template_rows(now)
    logs = [
        *workload.rows,
        *workload.log_rows,
        *wrapper_rows(workload.truth["app_name"], workload.truth["version"]),
        *weather,
        *typescript,
    ]
    sent = tuple(Sent.from_logs(row) for row in logs) + tuple(Sent.from_python(row) for row in python)
    naive_now = now.replace(tzinfo=None)
    data = Dataset(
        naive_now, (window[0].replace(tzinfo=None), window[1].replace(tzinfo=None)), sent, tuple(logs), tuple(python)
    )
    # No row near a bound of the ranges queried: chdb's `now()` is a little later than ours, and
    # a row within minutes of a bound would be in or out by chance.
    bounds = [naive_now - timedelta(days=1), *data.window]
    for row in sent:
        assert all(abs(row.at - bound) > timedelta(minutes=30) for bound in bounds), row
        assert row.at <= naive_now, row
    return data


@pytest.fixture(scope="module")
def workspace(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """The project deployed into chdb, with the dataset's rows appended as sent."""
    workspace = Workspace(Project.load(TINYBIRD_DIR), tmp_path_factory.mktemp("chdb"))
    try:
        workspace.append("mcp_logs", dataset.sent_logs)
        workspace.append("mcp_logs_python", dataset.sent_python)
        yield workspace
    finally:
        workspace.close()


def read(workspace: Workspace, pipe: str, params: Mapping[str, str]) -> list[dict]:
    """`GET /v0/pipes/PIPE.json?PARAMS`: the endpoint's rows."""
    return [json.loads(line) for line in workspace.endpoint(pipe, "JSONEachRow", params).splitlines()]


def assert_same_rows(actual: list[dict], expected: list[dict]) -> None:
    """Same rows in the same order, same columns in the same order; rounded columns within
    their rounding."""
    assert [list(row) for row in actual] == [list(row) for row in expected], "columns"

    def exact(row: dict) -> dict:
        return {key: value for key, value in row.items() if key not in ROUNDED}

    assert [exact(row) for row in actual] == [exact(row) for row in expected]
    for got, want in zip(actual, expected, strict=True):
        for column in ROUNDED.keys() & want.keys():
            assert got[column] == pytest.approx(want[column], abs=ROUNDED[column] + SLACK), (column, exact(want))


# --------------------------------------------------------------------------------------------
# The tests


def endpoint_files() -> dict[str, Path]:
    return {path.stem: path for path in sorted(ENDPOINTS_DIR.glob("*.pipe"))}


def test_every_endpoint_is_checked() -> None:
    """An endpoint added without cases here fails, and so does a case of an endpoint gone."""
    assert endpoint_files(), f"no endpoints in {ENDPOINTS_DIR}"
    assert set(CASES) == set(EXPECTED) == set(endpoint_files())


@pytest.fixture(scope="module")
def parsed_endpoints() -> dict[str, dict[str, Any]]:
    """Each endpoint file through Tinybird's own parser."""
    return {path.stem: pipe for path, pipe in parse_datafiles(endpoint_files().values()).items()}


def test_every_endpoint_is_read_with_the_read_token(parsed_endpoints: dict[str, dict[str, Any]]) -> None:
    """Each file is an endpoint (its last node `TYPE ENDPOINT`, no other node published) that
    `analytics_read`, and only it, can read."""
    for name, pipe in parsed_endpoints.items():
        assert pipe["kind"] == "pipe", name
        assert pipe["tokens"] == [{"name": READ_TOKEN, "permissions": "READ"}], name
        types = [(node["type"] or "").upper() for node in pipe["nodes"]]
        assert types[-1] == "ENDPOINT" and not any(types[:-1]), (name, types)


def test_each_endpoint_takes_the_parameters_it_documents(parsed_endpoints: dict[str, dict[str, Any]]) -> None:
    """Tinybird ignores a query parameter that no template names: a misspelt one in a template
    (`defined(app)` beside `String(app_name)`) would silently answer for every app. So the names
    the templates use are exactly the documented ones, each in the description, and the cases
    here use no other."""
    for name, pipe in parsed_endpoints.items():
        sql = "\n".join(node["sql"] for node in pipe["nodes"])
        used = {defined or typed for defined, typed in TEMPLATE_PARAMETER.findall(sql)}
        documented = COMMON_PARAMETERS | OWN_PARAMETERS.get(name, set())
        assert used == documented, name
        assert all(f"`{parameter}`" in pipe["description"] for parameter in documented), name
        for case in CASES[name]:
            assert set(case.params) <= documented, (name, case)


def test_a_bad_parameter_is_refused(workspace: Workspace) -> None:
    """Tinybird validates typed parameters before any SQL runs: a request with a start that is no
    date, or a limit that is no number, is an error, not a silently wrong answer."""
    with pytest.raises(TinybirdError, match=r"not-a-date.*DateTime"):
        read(workspace, "api_tools", {"start": "not-a-date"})
    with pytest.raises(TinybirdError, match=r"'abc'.*Int32"):
        read(workspace, "api_sessions", {"limit": "abc"})


@pytest.mark.parametrize(
    ("pipe", "case"),
    [(pipe, case) for pipe, cases in CASES.items() for case in cases],
    ids=[f"{pipe}-{case.name}" for pipe, cases in CASES.items() for case in cases],
)
def test_endpoint_answers_what_the_rows_say(workspace: Workspace, dataset: Dataset, pipe: str, case: Case) -> None:
    """The endpoint's whole answer to `case`'s parameters, rendered by Tinybird's engine and run
    on chdb, is the answer computed here from the rows: every row, every column, in the order the
    endpoint promises (its ORDER BY, ties broken down to its grouping keys, so that the order and
    what a LIMIT keeps do not depend on how ClickHouse happened to read the parts)."""
    params = dataset.resolve(case.params)
    expect = EXPECTED[pipe]
    expected = expect(dataset, params)
    # The dataset exercises the case: the answer is not empty, and each parameter changes it
    # (an ignored filter, range or limit would not go unnoticed).
    assert expected, f"{pipe} {params}: the dataset gives this case nothing to check"
    for key in params:
        without = {name: value for name, value in params.items() if name != key}
        assert expect(dataset, without) != expected, f"{pipe}: the dataset does not test `{key}`"
    assert_same_rows(read(workspace, pipe, params), expected)
