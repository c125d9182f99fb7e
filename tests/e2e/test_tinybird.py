"""The Tinybird project in `tinybird/`, run on a real ClickHouse (chdb) against what the crate
really sends, checked against what really happened.

`examples/metrics_workload` makes a known mix of calls (tools, prompts, resources; errors,
panics, a cancellation; spread latencies; five sessions) through a loopback Events API and writes
the rows it received and its own account of every call. The test deploys the project's
datasources and pipes into chdb, appends those rows, plus rows in the shape of the template's
TypeScript and Python producers (no `kind`), log lines (`kind = 'log'`) and rows of the rmcp
server wrapper that are not handler calls (`kind` request, notification, session, task,
missing_capability), reads the `api_prometheus` endpoint in the `.prometheus` format, checks it
with `promtool check metrics`, and compares every metric with what the calls, not the rows, say
it must be.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import re
import shutil
import subprocess
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from e2e_support import REPO_ROOT, example_binary
from prom_text import Family, Labels, bucket_bound, histogram_quantile, nearest_rank, parse
from tinybird_project import Column, Project, Workspace

TINYBIRD_DIR = REPO_ROOT / "tinybird"
ENDPOINT = "api_prometheus"
HISTOGRAM = "mcp_server_operation_duration_seconds"

# The OpenTelemetry MCP semantic conventions' bucket bounds for mcp.server.operation.duration,
# in seconds. Kept here as well as in the project, so that a change there fails here.
BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, math.inf)

# The template's metrics: name → (type, help), exactly as its api_prometheus pipe serves them.
TEMPLATE_METRICS = {
    "mcp_requests_total": ("counter", "total of requests"),
    "mcp_errors_total": ("counter", "total of errors"),
    "mcp_uniq_total_sessions": ("gauge", "total of uniq sessions"),
    "mcp_requests_total_5m": ("counter", "total of requests last 5 minutes"),
    "mcp_errors_total_5m": ("counter", "total of errors last 5 minutes"),
    "mcp_uniq_total_sessions_5m": ("gauge", "total of uniq sessions last 5 minutes"),
}
SESSION_HISTOGRAM = "mcp_server_session_duration_seconds"
OUR_METRICS = {
    "mcp_active_sessions": "gauge",
    "mcp_active_users": "gauge",
    "mcp_analytics_last_row_timestamp_seconds": "gauge",
    "mcp_analytics_rows_total": "counter",
    "mcp_calls_total": "counter",
    "mcp_client_requests_total": "counter",
    "mcp_listed_handlers": "gauge",
    "mcp_model_calls_total": "counter",
    "mcp_prompt_requests_total": "counter",
    "mcp_rejected_calls_total": "counter",
    "mcp_resource_requests_total": "counter",
    HISTOGRAM: "histogram",
    SESSION_HISTOGRAM: "histogram",
    "mcp_server_requests_total": "counter",
    "mcp_sessions_total": "counter",
    "mcp_top_errors_24h": "gauge",
}
# What every handler listed or called reports, 0 until it happens.
ZERO_FILLED_OUTCOMES = ("ok", "error", "panic", "cancelled")
# The OpenTelemetry method and name attribute of each handler kind's calls.
METHOD_OF_KIND = {"tool": "tools/call", "prompt": "prompts/get", "resource": "resources/read"}
OTEL_NAME_OF_KIND = {"tool": "gen_ai_tool_name", "prompt": "gen_ai_prompt_name", "resource": "mcp_resource_uri"}
# What the template counts as an error: all time, and in its five-minute window.
ERROR_LEVELS = {"error", "ERROR"}
ERROR_LEVELS_5M = ERROR_LEVELS | {"critical", "CRITICAL"}
# promtool's linter objects to the template's counter names without `_total` at the end; they
# stay, for compatibility. Any other finding fails the test.
KNOWN_LINT = {
    'mcp_errors_total_5m counter metrics should have "_total" suffix',
    'mcp_requests_total_5m counter metrics should have "_total" suffix',
}
# The template's landing datasource, which producers and deployments rely on, column by column.
TEMPLATE_MCP_LOGS = (
    Column("timestamp", "DateTime", "$.timestamp"),
    Column("session", "String", "$.session"),
    Column("level", "String", "$.level"),
    Column("record", "String", "$.record"),
)
TEMPLATE_MCP_LOGS_ENGINE = {
    "ENGINE": "MergeTree",
    "ENGINE_PARTITION_KEY": "toYear(timestamp)",
    "ENGINE_SORTING_KEY": "session, timestamp",
}
# What Grafana puts in place of the dashboard's variables before PromQL sees a query.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__range": "6h",
    "$app_name": ".*",
    "$version": ".*",
    "$tool": ".*",
}
# A row this old is in the all-time metrics and out of the five-minute ones.
OLD = timedelta(hours=2)


@dataclass(frozen=True)
class Call:
    """One handler call, as every metric must count it."""

    app: str
    version: str
    tool: str
    prompt: str
    resource: str
    level: str
    session: str
    kind: str = ""  # '' for producers that record no kind (the template's)
    outcome: str = ""
    recent: bool = True
    # Recorded on request only; the edge cases below carry them.
    user: str = ""
    model: str = ""

    @property
    def handler(self) -> str:
        return {"tool": self.tool, "prompt": self.prompt, "resource": self.resource}.get(self.kind, "")

    def series(self, **more: str) -> Labels:
        """The labels of this call's handler in mcp-analytics' own metrics."""
        return handler_labels(self.app, self.version, self.kind, self.handler, **more)

    def operation(self) -> Labels:
        """The labels of this call's series of the operation histogram: a handler call recorded
        without the rmcp wrapper has no transport, protocol nor error type."""
        return operation_labels(self.app, self.version, self.kind, self.handler)


@dataclass(frozen=True)
class Workload:
    """What `metrics_workload` sent (`rows`) and did (`truth`)."""

    rows: list[dict]
    truth: dict
    # The log lines of the `tracing` layer it sent besides (`kind = 'log'`).
    log_rows: list[dict]

    def calls(self) -> list[Call]:
        """The workload's calls, from its own account; the level is the wire format's contract."""
        calls = []
        for call in self.truth["calls"]:
            kind, name = call["kind"], call["name"]
            calls.append(
                Call(
                    app=self.truth["app_name"],
                    version=self.truth["version"],
                    tool=name if kind == "tool" else "",
                    prompt=name if kind == "prompt" else "",
                    resource=name if kind == "resource" else "",
                    level="error" if call["outcome"] in ("error", "panic") else "info",
                    session=call["session"],
                    kind=kind,
                    outcome=call["outcome"],
                )
            )
        return calls


def labels(**pairs: str) -> Labels:
    return frozenset(pairs.items())


def handler_labels(app: str, version: str, kind: str, name: str, **more: str) -> Labels:
    """The label set of a handler's series: its kind and name."""
    return labels(app_name=app, version=version, kind=kind, name=name, **more)


def operation_labels(app: str, version: str, kind: str, name: str, **more: str) -> Labels:
    """The label set of a handler call's operation series, named as the OpenTelemetry
    conventions name them in Prometheus."""
    return labels(app_name=app, version=version, mcp_method_name=METHOD_OF_KIND[kind], **{OTEL_NAME_OF_KIND[kind]: name}, **more)


# --------------------------------------------------------------------------------------------
# Rows of the template's producers and log lines, made here


def iso(at: datetime) -> str:
    """`new Date().toISOString()`, what the template's TypeScript logger sends."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def typescript_row(call: Call, at: datetime, extra: dict | None = None) -> dict:
    """A row of the template's TypeScript logger: no `kind`, no outcome, no duration."""
    record = {
        "appName": call.app,
        "funcName": "handleRequest",
        "tool": call.tool,
        "prompt": call.prompt,
        "resource": call.resource,
        "level": call.level,
        "version": call.version,
        "message": f"handled {call.tool or call.prompt or call.resource or 'a request'}",
        **(extra or {}),
    }
    return {
        "timestamp": iso(at),
        "session": call.session,
        "level": call.level,
        "record": json.dumps(record),
    }


def python_row(call: Call, at: datetime) -> dict:
    """A row of the template's Python handler (`mcp_logs_python`): `extra` holds what it knows."""
    extra = {
        "levelno": 40 if call.level == "ERROR" else 20,
        "msg": "handle_call_tool",
        "session": call.session,
        "mcp_server_version": call.version,
    }
    for key in ("tool", "prompt", "resource"):
        if getattr(call, key):
            extra[key] = getattr(call, key)
    return {
        "app_name": call.app,
        "asctime": at.strftime("%Y-%m-%d %H:%M:%S.") + f"{at.microsecond // 1000:03d}",
        "created": at.timestamp(),
        "extra": extra,
        "filename": "server.py",
        "formatted_message": f"{at:%Y-%m-%d %H:%M:%S} - mcp-tinybird - {call.level} - handle_call_tool",
        "funcName": "handle_call_tool",
        "level": extra["levelno"],
        "levelname": call.level,
        "lineno": 210,
        "message": "handle_call_tool",
        "module": "server",
        "msecs": at.microsecond / 1000,
        "name": "mcp-tinybird",
        "pathname": "/srv/mcp_tinybird/server.py",
        "process": 4242,
        "processName": "MainProcess",
        "relativeCreated": 1234.5,
        "thread": 140000,
        "threadName": "MainThread",
    }


def typescript_calls() -> list[Call]:
    ts = dict(app="ts-server", version="1.4.0", prompt="", resource="")
    return [
        *[Call(tool="run-select-query", level="info", session="ts-1", **ts)] * 3,
        Call(tool="run-select-query", level="error", session="ts-1", **ts),
        Call(tool="run-select-query", level="info", session="ts-old", recent=False, **ts),
        # An older version, idle for hours: its windowed gauges must read 0, not vanish.
        Call(**{**ts, "version": "1.3.0"}, tool="run-select-query", level="info", session="ts-idle", recent=False),
        Call(tool="list-datasources", level="ERROR", session="ts-2", **ts),
        # Counted as an error in the five-minute window only, as the template does.
        Call(tool="list-datasources", level="critical", session="ts-2", **ts),
        Call(**{**ts, "prompt": "explore"}, tool="", level="info", session="ts-2"),
        Call(**{**ts, "resource": "tinybird://insights"}, tool="", level="info", session="ts-2"),
    ]


def python_calls() -> list[Call]:
    py = dict(app="py-server", version="0.1.4", session="py-1")
    return [
        Call(tool="run-select-query", prompt="", resource="", level="INFO", **py),
        Call(tool="run-select-query", prompt="", resource="", level="ERROR", **py),
        Call(tool="", prompt="tinybird-default", resource="", level="INFO", **py),
        Call(tool="", prompt="", resource="tinybird://insights", level="INFO", **py),
        # A log line outside any handler: the template counts it as a request of tool ''.
        Call(tool="", prompt="", resource="", level="INFO", recent=False, **py),
    ]


def log_lines(app: str, version: str) -> list[dict]:
    """Log lines of mcp-analytics (`kind = 'log'`): a tool named, an error level and a session
    of their own, all of which would show if they were counted as requests."""
    now = datetime.now(UTC)
    ours = dict(app=app, version=version, prompt="", resource="")
    lines = [
        Call(tool="search", level="error", session="log-only", **ours),
        Call(tool="", level="info", session="session-alpha", **ours),
    ]
    return [typescript_row(line, now, {"kind": "log"}) for line in lines]


# The sessions of the wrapper's rows below: none made a handler call, so none may count.
# A conversation handle stands for the session of a stateless request when the wrapper's
# `conversations` option is on.
CONVERSATION = "0190b0a8-4c1e-7000-8000-5b2f3a1d9e01"
WRAPPER_SESSIONS = ("wrapper-session", "wrapper-tasks", "", CONVERSATION)


def wrapper_rows(app: str, version: str) -> list[dict]:
    """Rows of the rmcp server wrapper (`instrument!`) that are not handler calls, in the exact
    shape the crate sends (keys without a value left out): a session's start and end, its
    initialize, listing, notification and a failed ping; a stateless request (empty session);
    a finished task; an agent's report of a missing capability. Counted the template's way they
    would add requests of tool '', errors and sessions of their own; none may count."""
    at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    origin = {"client_name": "wrapper-client", "client_version": "1.0.0", "protocol_version": "2025-11-25", "transport": "tcp"}

    def row(session: str, level: str, kind: str, **record: object) -> dict:
        head = {"appName": app, "funcName": record.pop("funcName"), "version": version}
        name = record.get("name") or record.get("method") or record.get("event")
        outcome = record.get("outcome")
        message = f"{kind} {name}" + (f": {outcome}" if outcome else "") + (f": {record['error']}" if "error" in record else "")
        full = {**head, "message": message, "kind": kind, **record}
        return {"timestamp": at, "session": session, "level": level, "record": json.dumps(full)}

    return [
        row("wrapper-session", "info", "session", funcName="", event="start", **origin),
        row("wrapper-session", "info", "request", funcName="initialize", method="initialize", outcome="ok",
            duration_ms=0.05, **origin, request_id="0"),
        row("wrapper-session", "info", "notification", funcName="on_initialized", method="notifications/initialized",
            outcome="ok", duration_ms=0.01, **origin),
        row("wrapper-session", "info", "request", funcName="list_tools", method="tools/list", outcome="ok",
            duration_ms=0.4, **origin, request_id="1", listed=["search", "fetch-weather", "translate"]),
        row("wrapper-session", "error", "request", funcName="ping", method="ping", outcome="error", duration_ms=0.02,
            error="internal error", error_type="-32603", **origin, request_id="2"),
        row("wrapper-session", "info", "session", funcName="", event="end", duration_ms=1500.0, **origin),
        row("", "info", "request", funcName="list_prompts", method="prompts/list", outcome="ok", duration_ms=0.2,
            protocol_version="2025-11-25", transport="tcp", request_id="7"),
        row("", "error", "request", funcName="initialize", method="initialize", outcome="error", duration_ms=0.1,
            error="unsupported protocol version", error_type="-32602", **origin, request_id="1"),
        row("wrapper-tasks", "error", "task", funcName="call_tool", name="search", outcome="error", duration_ms=2500.0,
            error="upstream failed", error_type="tool_error", task_id="task-1", **origin),
        row(CONVERSATION, "info", "missing_capability", funcName="call_tool", method="tools/call",
            name="get_more_tools", outcome="ok", duration_ms=0.03, **origin, request_id="3",
            intent="a tool that converts currencies", conversation=CONVERSATION),
    ]


def edge_durations() -> list[tuple[Call, float]]:
    """mcp-analytics rows (made here) whose durations sit exactly on bucket bounds, and past the
    last one: a bucket counts the calls at most its bound (`le`), and beyond 300 s only +Inf."""
    edge = dict(app="edge-server", version="2.0.0", prompt="", resource="", session="edge-1", kind="tool")
    durations_ms = [10.0, 20.0, 300_000.0, 300_001.0]
    people = [("ada", "claude-sonnet-4"), ("ada", "claude-sonnet-4"), ("grace", "gpt-5"), ("", "")]
    return [
        (Call(tool="exact", level="info", outcome="ok", user=user, model=model, **edge), ms)
        for ms, (user, model) in zip(durations_ms, people, strict=True)
    ]


def analytics_row(call: Call, duration_ms: float, at: datetime) -> dict:
    """A row in mcp-analytics' wire format (the README's "Wire format"), every `record` key
    present, even empty: the workload's rows leave empty ones out, and both must count alike."""
    record = {
        "appName": call.app,
        "funcName": call.handler,
        "tool": call.tool,
        "prompt": call.prompt,
        "resource": call.resource,
        "version": call.version,
        "message": f"{call.kind} {call.handler}: {call.outcome}",
        "kind": call.kind,
        "outcome": call.outcome,
        "duration_ms": duration_ms,
        "error": "",
        "client_name": "",
        "client_version": "",
        "user": call.user,
        "model": call.model,
    }
    return {
        "timestamp": at.strftime("%Y-%m-%d %H:%M:%S.") + f"{at.microsecond // 1000:03d}",
        "session": call.session,
        "level": call.level,
        "record": json.dumps(record),
    }


# --------------------------------------------------------------------------------------------
# Fixtures: one workload, one workspace, one scrape for the whole module


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Workload:
    out_dir = tmp_path_factory.mktemp("workload")
    binary = example_binary("metrics_workload")
    done = subprocess.run(
        [str(binary), str(out_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    assert done.returncode == 0, f"metrics_workload: exit {done.returncode}\n{done.stdout}{done.stderr}"
    sent = [json.loads(line) for line in (out_dir / "mcp_logs.ndjson").read_text().splitlines()]
    rows = [row for row in sent if json.loads(row["record"])["kind"] != "log"]
    log_rows = [row for row in sent if json.loads(row["record"])["kind"] == "log"]
    truth = json.loads((out_dir / "truth.json").read_text())
    assert len(rows) == len(truth["calls"]) > 0
    return Workload(rows, truth, log_rows)


@pytest.fixture(scope="module")
def analytics_calls(workload: Workload) -> list[Call]:
    """Every call recorded in mcp-analytics' format: the workload's and the edge cases'."""
    return workload.calls() + [call for call, _ in edge_durations()]


@pytest.fixture(scope="module")
def analytics_rows(workload: Workload) -> list[dict]:
    """The rows of `analytics_calls`, as sent."""
    now = datetime.now(UTC)
    return workload.rows + [analytics_row(call, ms, now) for call, ms in edge_durations()]


@pytest.fixture(scope="module")
def recorded_seconds(analytics_rows: list[dict]) -> dict[Labels, list[float]]:
    """The durations mcp-analytics recorded (`duration_ms` on the wire), per handler series."""
    recorded: dict[Labels, list[float]] = defaultdict(list)
    for record in (json.loads(row["record"]) for row in analytics_rows):
        kind = record["kind"]
        series = operation_labels(record["appName"], record["version"], kind, record[kind])
        recorded[series].append(record["duration_ms"] / 1000)
    return recorded


@pytest.fixture(scope="module")
def expected_calls(analytics_calls: list[Call]) -> list[Call]:
    return analytics_calls + typescript_calls() + python_calls()


@pytest.fixture(scope="module")
def workspace(
    workload: Workload, analytics_rows: list[dict], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workspace]:
    workspace = Workspace(Project.load(TINYBIRD_DIR), tmp_path_factory.mktemp("chdb"))
    try:
        now = datetime.now(UTC)

        def at(call: Call) -> datetime:
            return now if call.recent else now - OLD

        workspace.append("mcp_logs", analytics_rows)
        workspace.append("mcp_logs", [typescript_row(call, at(call)) for call in typescript_calls()])
        workspace.append("mcp_logs", log_lines(workload.truth["app_name"], workload.truth["version"]))
        workspace.append("mcp_logs", workload.log_rows)
        workspace.append("mcp_logs", wrapper_rows(workload.truth["app_name"], workload.truth["version"]))
        workspace.append("mcp_logs_python", [python_row(call, at(call)) for call in python_calls()])
        yield workspace
    finally:
        workspace.close()


@pytest.fixture(scope="module")
def exposition(workspace: Workspace) -> str:
    """The body of `GET /v0/pipes/api_prometheus.prometheus`."""
    return workspace.endpoint(ENDPOINT, "Prometheus")


@pytest.fixture(scope="module")
def metrics(exposition: str) -> dict[str, Family]:
    return parse(exposition)


# --------------------------------------------------------------------------------------------
# What the metrics must be, from the calls


def template_expectations(calls: list[Call]) -> dict[str, dict[Labels, float]]:
    """The template's six metrics over `calls`, by its rules: every call is a request of its
    `tool`; an error is a call at an error level; sessions are distinct session ids."""
    expected: dict[str, dict[Labels, float]] = defaultdict(dict)
    for suffix, window in (("", calls), ("_5m", [call for call in calls if call.recent])):
        error_levels = ERROR_LEVELS_5M if suffix else ERROR_LEVELS
        by_tool: dict[tuple[str, str, str], list[Call]] = defaultdict(list)
        sessions: dict[tuple[str, str], set[str]] = defaultdict(set)
        for call in window:
            by_tool[call.app, call.version, call.tool].append(call)
            sessions[call.app, call.version].add(call.session)
        for (app, version, tool), group in by_tool.items():
            key = labels(app_name=app, version=version, tool=tool)
            expected[f"mcp_requests_total{suffix}"][key] = len(group)
            expected[f"mcp_errors_total{suffix}"][key] = sum(call.level in error_levels for call in group)
        for (app, version), ids in sessions.items():
            key = labels(app_name=app, version=version, tool="all")
            expected[f"mcp_uniq_total_sessions{suffix}"][key] = len(ids)
    return expected


def counts(keys) -> dict[Labels, float]:
    return dict(Counter(keys))


def bucket_index(seconds: float) -> int:
    """Which histogram bucket `seconds` falls in: the index of the first bound at or above it."""
    return bisect.bisect_left(BUCKETS, seconds)


def handler_call_series(series: dict[Labels, object]) -> dict[Labels, object]:
    """The operation histogram's series of handler calls recorded without the rmcp wrapper
    (the workload's and the edge cases'): no transport, and no error type (the attributes alone
    record none), so that the series at 0 for a call's next panic or rejection stay out. The
    wrapper's rows, and the zeros of the handlers its listings name, are on a transport."""
    handler_methods = set(METHOD_OF_KIND.values())
    return {
        key: value
        for key, value in series.items()
        if dict(key)["mcp_method_name"] in handler_methods and not {"network_transport", "error_type"} & dict(key).keys()
    }


def test_handler_calls_have_their_next_error_types_at_zero(metrics: dict[str, Family], analytics_calls: list[Call]) -> None:
    """A handler call's operation series of a panic and a `-32602` rejection (and a tool's
    `tool_error`) are there at 0 before the first one: its first panic moves a latency panel."""
    count = metrics[HISTOGRAM].series("_count")
    for call in analytics_calls:
        error_types = ("tool_error", "panic", "-32602") if call.kind == "tool" else ("panic", "-32602")
        for error_type in error_types:
            assert count[call.operation() | labels(error_type=error_type)] == 0, (call, error_type)


def histogram_buckets(family: Family) -> dict[Labels, dict[float, float]]:
    """Cumulative bucket counts per series (the series' labels without `le`)."""
    series: dict[Labels, dict[float, float]] = defaultdict(dict)
    for sample in family.samples:
        if sample.name == f"{family.name}_bucket":
            rest = frozenset(pair for pair in sample.labels if pair[0] != "le")
            series[rest][bucket_bound(sample.label("le"))] = sample.value
    return series


# --------------------------------------------------------------------------------------------
# The tests


def test_what_producers_and_scrapers_rely_on_is_the_templates() -> None:
    """`mcp_logs` and its append token, and the endpoint's read token, as the template has them."""
    project = Project.load(TINYBIRD_DIR)
    mcp_logs = project.datasources["mcp_logs"]
    assert (mcp_logs.columns, mcp_logs.engine) == (TEMPLATE_MCP_LOGS, TEMPLATE_MCP_LOGS_ENGINE)
    assert mcp_logs.tokens == (("mcp_public_write_token", "APPEND"),)
    assert project.pipes[ENDPOINT].tokens == (("prometheus", "READ"),)


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Runs `promtool ARGS`; fails the test, saying what to install, when there is none."""
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail(
            "promtool is missing: install Debian's `prometheus` package (tests/run.sh does it when root)",
            pytrace=False,
        )
    return subprocess.run([binary, *args], input=stdin, capture_output=True, text=True, timeout=30)


def test_promtool_accepts_the_exposition(exposition: str) -> None:
    checked = promtool("check", "metrics", stdin=exposition)
    findings = {line.strip() for line in checked.stdout.splitlines() if line.strip()}
    # 0: clean; 3: lint findings only (listed on stdout); anything else is a parse error.
    assert checked.returncode in (0, 3), f"promtool: {checked.stderr}{checked.stdout}"
    assert findings <= KNOWN_LINT, f"promtool findings beyond the template's names: {findings - KNOWN_LINT}"


def test_one_block_per_metric_in_name_order(workspace: Workspace, metrics: dict[str, Family]) -> None:
    # `parse` already refuses a metric split into two blocks or with a second HELP or TYPE.
    rows = workspace.endpoint(ENDPOINT, "JSONEachRow").splitlines()
    names = [json.loads(row)["name"] for row in rows]
    assert names == sorted(names)
    assert list(metrics) == sorted(metrics)
    assert set(metrics) == set(TEMPLATE_METRICS) | set(OUR_METRICS)
    for name, (type_, help_) in TEMPLATE_METRICS.items():
        assert (metrics[name].type, metrics[name].help) == (type_, help_), name
    for name, type_ in OUR_METRICS.items():
        assert metrics[name].type == type_ and metrics[name].help, name


def test_template_metrics_count_as_the_template_does(
    metrics: dict[str, Family], expected_calls: list[Call]
) -> None:
    """Requests, errors and sessions, all time and over five minutes, for mcp-analytics' rows and
    for rows of the template's own producers, which have no `kind`."""
    expected = template_expectations(expected_calls)
    for name in TEMPLATE_METRICS:
        assert metrics[name].series() == expected[name], name


def test_requests_per_tool_are_the_calls_made(metrics: dict[str, Family], workload: Workload) -> None:
    truth = workload.truth
    made = Counter(call["name"] for call in truth["calls"] if call["kind"] == "tool")
    other = sum(call["kind"] != "tool" for call in truth["calls"])
    served = {
        sample.label("tool"): sample.value
        for sample in metrics["mcp_requests_total"].samples
        if sample.label("app_name") == truth["app_name"]
    }
    assert served == {**made, "": other}


def test_log_lines_are_not_requests(metrics: dict[str, Family], workload: Workload) -> None:
    truth = workload.truth
    app = labels(app_name=truth["app_name"], version=truth["version"])
    search = app | labels(tool="search")
    searches = sum(call["name"] == "search" for call in truth["calls"])
    assert metrics["mcp_requests_total"].series()[search] == searches
    assert metrics["mcp_errors_total"].series()[search] == 0
    sessions = len({call["session"] for call in truth["calls"]})
    assert metrics["mcp_uniq_total_sessions"].series()[app | labels(tool="all")] == sessions


def test_wrapper_rows_other_than_handler_calls_are_not_calls(
    workspace: Workspace, metrics: dict[str, Family], workload: Workload
) -> None:
    """The rmcp server wrapper also records every other request, notification, session and
    task, and the agents' reports of missing capabilities. Counted the template's way, each would be a request of tool '' (some at level error)
    in sessions that made no call; none reaches `mcp_calls`, so every metric is the calls'."""
    truth = workload.truth
    sent = wrapper_rows(truth["app_name"], truth["version"])
    kinds_sent = {json.loads(row["record"])["kind"] for row in sent}
    assert kinds_sent == {"request", "notification", "session", "task", "missing_capability"}
    assert {row["level"] for row in sent} == {"info", "error"}
    assert {row["session"] for row in sent} == set(WRAPPER_SESSIONS)
    called = {call["session"] for call in truth["calls"]}
    assert not called & set(WRAPPER_SESSIONS), "the wrapper's sessions must be sessions without calls"

    kinds = workspace.query("SELECT kind, count() FROM mcp_calls GROUP BY kind ORDER BY kind").splitlines()
    assert {line.split("\t")[0] for line in kinds} <= {"", "tool", "prompt", "resource"}, kinds
    sessions = ", ".join(f"'{session}'" for session in WRAPPER_SESSIONS)
    landed = workspace.query(f"SELECT count() FROM mcp_calls WHERE session IN ({sessions})").strip()
    assert landed == "0", f"{landed} rows of the wrapper's sessions in mcp_calls"

    app = labels(app_name=truth["app_name"], version=truth["version"])
    other = [call for call in truth["calls"] if call["kind"] != "tool"]
    assert metrics["mcp_requests_total"].series()[app | labels(tool="")] == len(other)
    errors = sum(call["outcome"] in ("error", "panic") for call in other)
    assert metrics["mcp_errors_total"].series()[app | labels(tool="")] == errors
    assert metrics["mcp_uniq_total_sessions"].series()[app | labels(tool="all")] == len(called)
    assert metrics["mcp_uniq_total_sessions_5m"].series()[app | labels(tool="all")] == len(called)
    outcomes = {dict(series).get("outcome") for series in metrics["mcp_calls_total"].series()}
    label_names = {frozenset(key for key, _ in series) for series in metrics["mcp_calls_total"].series()}
    assert outcomes <= set(ZERO_FILLED_OUTCOMES)
    assert label_names == {frozenset({"app_name", "version", "kind", "name", "outcome"})}


def test_real_log_lines_leave_the_templates_per_tool_counts_unchanged(
    workspace: Workspace, workload: Workload
) -> None:
    """The workload logs through the `tracing` layer, inside a tool too, an error among the
    lines. Counted the template's way (every row a request of its `tool`, an `error` level an
    error; its SQL run here on the rows as sent, lines and calls together), each tool's requests
    and errors are still exactly its calls and its failed calls."""
    in_tool = [row for row in workload.log_rows if json.loads(row["record"]).get("handler_kind") == "tool"]
    assert any(row["level"] == "error" for row in in_tool), "an error line written in a tool"
    sent = "\n".join(json.dumps(row) for row in workload.rows + workload.log_rows)
    counted = workspace.query(
        f"""
        SELECT JSONExtractString(record, 'tool') AS tool, count(), countIf(level IN ('error', 'ERROR'))
        FROM format(JSONEachRow, 'timestamp String, session String, level String, record String', $${sent}$$)
        WHERE tool != ''
        GROUP BY tool ORDER BY tool
        """
    )
    template = {
        tool: (int(requests), int(errors))
        for tool, requests, errors in (line.split("\t") for line in counted.splitlines())
    }
    tools = [call for call in workload.truth["calls"] if call["kind"] == "tool"]
    made = {
        name: (
            sum(call["name"] == name for call in tools),
            sum(call["name"] == name and call["outcome"] in ("error", "panic") for call in tools),
        )
        for name in {call["name"] for call in tools}
    }
    assert template == made


def test_five_minute_windows_leave_older_rows_out(metrics: dict[str, Family]) -> None:
    key = labels(app_name="ts-server", version="1.4.0", tool="run-select-query")
    assert metrics["mcp_requests_total"].series()[key] == 5
    assert metrics["mcp_requests_total_5m"].series()[key] == 4
    listing = labels(app_name="ts-server", version="1.4.0", tool="list-datasources")
    assert metrics["mcp_errors_total"].series()[listing] == 1
    assert metrics["mcp_errors_total_5m"].series()[listing] == 2


def test_sessions_are_the_sessions_used(metrics: dict[str, Family], workload: Workload) -> None:
    truth = workload.truth
    used = {call["session"] for call in truth["calls"]}
    # Three async sessions, one sync, and the process's own for calls outside any.
    assert len(used) == 5, used
    key = labels(app_name=truth["app_name"], version=truth["version"], tool="all")
    assert metrics["mcp_uniq_total_sessions"].series()[key] == len(used)
    assert metrics["mcp_uniq_total_sessions_5m"].series()[key] == len(used)


def test_calls_by_outcome_are_the_outcomes_observed(
    metrics: dict[str, Family], analytics_calls: list[Call], workload: Workload
) -> None:
    """Only mcp-analytics records outcomes; the other producers' rows have no series here. Every
    handler called or listed (the wrapper's `tools/list` row names `translate`, never called),
    and `_OTHER` of a listed kind, reports each of ok, error, panic and cancelled, 0 until it
    happens, so that `increase()` sees a handler's first call and its first panic."""
    calls = analytics_calls
    truth = workload.truth
    listed = {("tool", name) for name in ("search", "fetch-weather", "translate")}
    handlers = {(c.app, c.version, c.kind, c.handler) for c in calls} | {
        (truth["app_name"], truth["version"], kind, name) for kind, name in listed | {("tool", "_OTHER")}
    }
    zeros = {handler_labels(*handler, outcome=outcome): 0 for handler in handlers for outcome in ZERO_FILLED_OUTCOMES}
    expected = zeros | counts(call.series(outcome=call.outcome) for call in calls)
    assert metrics["mcp_calls_total"].series() == expected
    never_called = handler_labels(truth["app_name"], truth["version"], "tool", "translate", outcome="ok")
    assert expected[never_called] == 0
    outcomes = Counter(call.outcome for call in calls)
    assert outcomes["error"] > 0 and outcomes["panic"] > 0 and outcomes["cancelled"] > 0, outcomes


def test_prompt_and_resource_requests(metrics: dict[str, Family], expected_calls: list[Call]) -> None:
    for kind in ("prompt", "resource"):
        expected = counts(
            labels(app_name=c.app, version=c.version, **{kind: getattr(c, kind)})
            for c in expected_calls
            if getattr(c, kind)
        )
        assert metrics[f"mcp_{kind}_requests_total"].series() == expected, kind


def test_histogram_counts_every_call_in_cumulative_buckets(
    metrics: dict[str, Family], analytics_calls: list[Call]
) -> None:
    family = metrics[HISTOGRAM]
    buckets = handler_call_series(histogram_buckets(family))
    calls = analytics_calls
    expected_counts = counts(call.operation() for call in calls)
    assert handler_call_series(family.series("_count")) == expected_counts
    assert buckets.keys() == expected_counts.keys() == handler_call_series(family.series("_sum")).keys()
    for series, by_bound in buckets.items():
        assert sorted(by_bound) == list(BUCKETS), series
        cumulative = [by_bound[bound] for bound in BUCKETS]
        assert cumulative == sorted(cumulative), f"buckets not cumulative: {series}"
        assert by_bound[math.inf] == expected_counts[series], series


def test_histogram_buckets_hold_the_recorded_durations(
    metrics: dict[str, Family], recorded_seconds: dict[Labels, list[float]]
) -> None:
    """Each bucket counts the calls whose recorded duration is at most its bound; `_sum` adds the
    recorded durations up."""
    recorded = recorded_seconds
    family = metrics[HISTOGRAM]
    buckets = handler_call_series(histogram_buckets(family))
    sums = family.series("_sum")
    assert buckets.keys() == recorded.keys()
    for series, durations in recorded.items():
        assert buckets[series] == {bound: sum(d <= bound for d in durations) for bound in BUCKETS}, series
        assert sums[series] == pytest.approx(sum(durations), rel=1e-9, abs=1e-12), series
    spread = {bucket_index(d) for durations in recorded.values() for d in durations}
    assert len(spread) >= 5, f"the workload's durations fill too few buckets to test: {sorted(spread)}"


def test_p95_from_buckets_is_within_a_bucket_of_the_measured_p95(
    metrics: dict[str, Family], workload: Workload
) -> None:
    """What Grafana shows (`histogram_quantile(0.95, ...)`) against the durations the workload
    measured around its calls, per handler with enough calls and over all handlers together."""
    buckets = histogram_buckets(metrics[HISTOGRAM])
    measured: dict[Labels, list[float]] = defaultdict(list)
    for call, account in zip(workload.calls(), workload.truth["calls"], strict=True):
        measured[call.operation()].append(account["measured_ms"] / 1000)

    checked = {}
    for series, durations in measured.items():
        if len(durations) >= 20:
            checked[series] = (histogram_quantile(0.95, buckets[series]), nearest_rank(durations, 0.95))
    # `sum by (le)` over the workload's handlers, as a dashboard's overall p95 does.
    overall = {bound: sum(buckets[series][bound] for series in measured) for bound in BUCKETS}
    everything = [d for durations in measured.values() for d in durations]
    checked[labels(all="handlers")] = (histogram_quantile(0.95, overall), nearest_rank(everything, 0.95))

    assert len(checked) >= 3, "too few handlers with 20 calls or more"
    for series, (estimated, actual) in checked.items():
        assert abs(bucket_index(estimated) - bucket_index(actual)) <= 1, (
            f"{dict(series)}: p95 from buckets {estimated:.4f}s, measured {actual:.4f}s"
        )


def test_scrape_config_is_valid() -> None:
    checked = promtool("check", "config", str(TINYBIRD_DIR / "prometheus.yml"))
    assert checked.returncode == 0, f"promtool: {checked.stderr}{checked.stdout}"


def test_dashboard_queries_are_promql_over_served_metrics(
    metrics: dict[str, Family], tmp_path: Path
) -> None:
    """Every query of the Grafana dashboard parses as PromQL (`promtool check rules` on them as
    recording rules) and names only metrics the endpoint serves."""
    dashboard = json.loads((TINYBIRD_DIR / "grafana" / "dashboard.json").read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert len(queries) >= 10
    served = set(metrics) | {f"{h}{suffix}" for h in (HISTOGRAM, SESSION_HISTOGRAM) for suffix in ("_bucket", "_sum", "_count")}
    rules = []
    for index, query in enumerate(queries):
        # Metric names only: label names (`mcp_method_name`) stand in matchers and groupings.
        stripped = re.sub(r"\{[^}]*\}", "", query)
        stripped = re.sub(r"\b(by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)", "", stripped)
        named = set(re.findall(r"\b(mcp_[a-z0-9_]+)", stripped))
        assert named and named <= served, f"{query}: not served: {named - served}"
        for variable, value in GRAFANA_VARIABLES.items():
            query = query.replace(variable, value)
        rules.append({"record": f"dashboard:query_{index}", "expr": query})
    rule_file = tmp_path / "dashboard_rules.yml"
    rule_file.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))  # JSON is YAML
    checked = promtool("check", "rules", str(rule_file))
    assert checked.returncode == 0, f"promtool: {checked.stderr}{checked.stdout}"


# --------------------------------------------------------------------------------------------
# The metrics beyond calls: operations, sessions, clients, listings, errors, activity, health


def records(rows: list[dict]) -> list[tuple[dict, dict]]:
    """Each row with its `record` parsed."""
    return [(row, json.loads(row["record"])) for row in rows]


def otel_operation(record: dict, **more: str) -> Labels:
    """A wrapper row's series of the operation histogram, computed here from the row: the
    attributes that do not apply, or were not recorded, left out."""
    method = record["method"]
    attributes = {
        "app_name": record["appName"],
        "version": record["version"],
        "mcp_method_name": method,
        "gen_ai_tool_name": record.get("name", "") if method == "tools/call" else "",
        "error_type": record.get("error_type", ""),
        "network_transport": record.get("transport", ""),
        "mcp_protocol_version": record.get("protocol_version", ""),
        **more,
    }
    return frozenset((key, value) for key, value in attributes.items() if value)


def test_operations_count_every_request_and_notification(metrics: dict[str, Family], workload: Workload) -> None:
    """The wrapper's initialize, listings, ping (failed), notification and missing-capability
    report each count once in `mcp_server_operation_duration_seconds`, under the OpenTelemetry
    attributes they carry; the success series of each operation, and the calls of every tool
    the listing named, exist at 0 (an operation's first success, a listed tool's first call, is
    seen by `increase()`)."""
    truth = workload.truth
    wrapper = records(wrapper_rows(truth["app_name"], truth["version"]))
    operations = [record for _, record in wrapper if record["kind"] in ("request", "notification", "missing_capability")]
    counted = counts(otel_operation(record) for record in operations)
    # At 0: what a call can start next. Its success; a handler call's panic and rejection too,
    # and a tool's `tool_error`; `_OTHER`'s rejection, for a listed kind.
    handler_errors = ("", "tool_error", "panic", "-32602")
    zeros = {
        otel_operation(record, error_type=error_type)
        for record in operations
        for error_type in (handler_errors if record["method"] == "tools/call" else ("",))
    }
    listing = next(record for record in operations if record.get("listed"))
    zeros |= {
        otel_operation({**listing, "method": "tools/call", "name": name}, error_type=error_type)
        for name in listing["listed"]
        for error_type in handler_errors
    }
    zeros.add(otel_operation({**listing, "method": "tools/call", "name": "_OTHER"}, error_type="-32602"))
    expected = {series: 0 for series in zeros} | counted
    served = {
        series: value
        for series, value in metrics[HISTOGRAM].series("_count").items()
        if dict(series)["app_name"] == truth["app_name"] and "network_transport" in dict(series)
    }
    assert served == expected
    assert expected[otel_operation({**listing, "method": "tools/call", "name": "translate"}, error_type="")] == 0
    ping = next(record for record in operations if record["method"] == "ping")
    assert served[otel_operation(ping)] == 1 and served[otel_operation(ping, error_type="")] == 0
    report = next(record for record in operations if record["kind"] == "missing_capability")
    assert dict(otel_operation(report))["gen_ai_tool_name"] == "get_more_tools"


def test_sessions_and_their_durations(metrics: dict[str, Family], workload: Workload) -> None:
    """A session's start row counts in `mcp_sessions_total`; its end row's duration in the
    session histogram, whose buckets exist from the start."""
    truth = workload.truth
    key = labels(
        app_name=truth["app_name"], version=truth["version"], network_transport="tcp", mcp_protocol_version="2025-11-25"
    )
    assert metrics["mcp_sessions_total"].series() == {key: 1}
    ended_seconds = 1.5  # the wrapper rows' session lasted 1500 ms
    buckets = histogram_buckets(metrics[SESSION_HISTOGRAM])
    assert buckets == {key: {bound: float(ended_seconds <= bound) for bound in BUCKETS}}
    assert metrics[SESSION_HISTOGRAM].series("_sum") == {key: ended_seconds}
    assert metrics[SESSION_HISTOGRAM].series("_count") == {key: 1}


def test_client_requests_are_every_operation_by_client(
    metrics: dict[str, Family], analytics_rows: list[dict], workload: Workload
) -> None:
    """Every request and notification, handler calls included, under the client that sent it;
    `unknown` where it did not say (calls recorded without the wrapper, stateless requests)."""
    truth = workload.truth
    rows = analytics_rows + wrapper_rows(truth["app_name"], truth["version"])
    operations = [
        record
        for _, record in records(rows)
        if record["kind"] in ("tool", "prompt", "resource", "request", "notification", "missing_capability")
    ]
    expected = counts(
        labels(
            app_name=record["appName"],
            version=record["version"],
            client_name=record.get("client_name") or "unknown",
            client_version=record.get("client_version") or "unknown",
        )
        for record in operations
    )
    assert metrics["mcp_client_requests_total"].series() == expected
    assert any(dict(key)["client_name"] == "wrapper-client" for key in expected)


def test_listed_handlers_are_the_listings_names(metrics: dict[str, Family], workload: Workload) -> None:
    truth = workload.truth
    expected = {
        labels(app_name=truth["app_name"], version=truth["version"], kind="tool", name=name): 1
        for name in ("search", "fetch-weather", "translate")
    }
    assert metrics["mcp_listed_handlers"].series() == expected


def test_models_and_users(metrics: dict[str, Family], analytics_calls: list[Call]) -> None:
    """Calls by the model that made them (where it was recorded), and distinct users in the
    windows: the edge cases' calls carry them."""
    with_model = [call for call in analytics_calls if call.model]
    assert with_model, "no call with a model to count"
    expected = counts(labels(app_name=c.app, version=c.version, gen_ai_request_model=c.model) for c in with_model)
    assert metrics["mcp_model_calls_total"].series() == expected
    users = defaultdict(set)
    for call in analytics_calls:
        if call.user:
            users[call.app, call.version].add(call.user)
    served = metrics["mcp_active_users"].series()
    for (app, version), ids in users.items():
        for window in ("5m", "1h"):
            assert served[labels(app_name=app, version=version, window=window)] == len(ids)


def test_windowed_gauges_read_zero_when_idle(metrics: dict[str, Family], expected_calls: list[Call]) -> None:
    """Every server that sent rows to `mcp_logs` or made calls in the window (whoever produced
    them) reports its active sessions and users in both windows: 0 for a version idle for hours,
    never a missing series."""
    servers = {(c.app, c.version) for c in expected_calls}
    active = defaultdict(set)
    for call in expected_calls:
        if call.recent and call.session:
            active[call.app, call.version].add(call.session)
    for name in ("mcp_active_sessions", "mcp_active_users"):
        served = metrics[name].series()
        assert {(dict(key)["app_name"], dict(key)["version"]) for key in served} == servers, name
        assert {dict(key)["window"] for key in served} == {"5m", "1h"}
    sessions = metrics["mcp_active_sessions"].series()
    idle = labels(app_name="ts-server", version="1.3.0", window="5m")
    assert sessions[idle] == 0 and sessions[idle - {("window", "5m")} | {("window", "1h")}] == 0
    for (app, version), ids in active.items():
        assert sessions[labels(app_name=app, version=version, window="5m")] == len(ids), (app, version)


def test_top_errors_are_each_handlers_most_frequent_error_texts(
    metrics: dict[str, Family], analytics_rows: list[dict]
) -> None:
    failures: Counter[Labels] = Counter()
    for row, record in records(analytics_rows):
        if record.get("outcome") in ("error", "panic"):
            kind = record["kind"]
            attributes = {
                "app_name": record["appName"],
                "version": record["version"],
                "kind": kind,
                "name": record[kind],
                "error_type": record.get("error_type", ""),
                "error": record.get("error", "")[:80],
            }
            failures[frozenset((k, v) for k, v in attributes.items() if v)] += 1
    by_handler: dict[tuple, list[tuple[Labels, int]]] = defaultdict(list)
    for key, count in failures.items():
        handler = tuple(sorted((k, v) for k, v in key if k not in ("error", "error_type")))
        by_handler[handler].append((key, count))
    expected = {}
    for entries in by_handler.values():
        entries.sort(key=lambda entry: (-entry[1], dict(entry[0]).get("error", "")))
        expected |= dict(entries[:5])
    assert expected, "the workload made no failed call"
    assert metrics["mcp_top_errors_24h"].series() == expected


def test_health_counts_every_row_by_kind(metrics: dict[str, Family], workspace: Workspace) -> None:
    """Rows per server and kind, log lines and the template's producers (`template`) included,
    and the time of each server's last row, against `mcp_logs` itself."""
    landed = [json.loads(line) for line in workspace.query("SELECT * FROM mcp_logs", "JSONEachRow").splitlines()]
    expected = counts(
        labels(app_name=record["appName"], version=record["version"], kind=record.get("kind") or "template")
        for _, record in records(landed)
    )
    assert metrics["mcp_analytics_rows_total"].series() == expected
    last: dict[Labels, float] = {}
    for row, record in records(landed):
        key = labels(app_name=record["appName"], version=record["version"])
        at = datetime.strptime(row["timestamp"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
        last[key] = max(last.get(key, 0.0), at)
    assert metrics["mcp_analytics_last_row_timestamp_seconds"].series() == last


def test_requests_by_method_start_at_zero_for_every_method(metrics: dict[str, Family], workload: Workload) -> None:
    """`mcp_server_requests_total` is the operation histogram's count by method, transport and
    protocol, and every MCP method is there at 0 on each transport and protocol a server was
    seen on: the first `notifications/cancelled` of a session is seen by `rate()`."""
    truth = workload.truth
    count = metrics[HISTOGRAM].series("_count")
    by_method: Counter[Labels] = Counter()
    for series, value in count.items():
        keep = ("app_name", "version", "mcp_method_name", "network_transport", "mcp_protocol_version")
        by_method[frozenset((k, v) for k, v in series if k in keep)] += value
    served = metrics["mcp_server_requests_total"].series()
    assert {key: value for key, value in served.items() if value} == {k: v for k, v in by_method.items() if v}
    on_tcp = labels(
        app_name=truth["app_name"], version=truth["version"], network_transport="tcp", mcp_protocol_version="2025-11-25"
    )
    for method in ("notifications/cancelled", "tasks/get", "completion/complete"):
        assert served[on_tcp | labels(mcp_method_name=method)] == 0, method
    assert served[on_tcp | labels(mcp_method_name="initialize")] == 2
