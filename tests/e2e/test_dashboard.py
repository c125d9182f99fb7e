"""The Grafana dashboard (`tinybird/grafana/dashboard.json`) over the whole real path: rows the
crate really sent, the Tinybird project on chdb, its `api_prometheus` body scraped by a real
Prometheus, and every panel's PromQL answered by that Prometheus, compared with counts computed
here from the raw rows.

Why the whole path: a panel can be valid PromQL over served metrics and still show the wrong
number. `rate()` and `increase()` only see a series' increments after its first sample, so a
tool's first call or first panic is lost unless the endpoint served its series at 0 before;
`unless` and `offset` must match on the labels the endpoint really sets; a quantile is only as
good as the buckets. Only Prometheus itself, scraping what the project renders from real rows,
says what a panel shows.

How the numbers are made exact: `dashboard_batches` (conftest.py) holds two batches of real
rows. The first is appended, rendered and scraped until Prometheus stored two scrapes of it; then
the second, likewise. Every query is evaluated at T, the last scrape, and `$__range` and
`$__rate_interval` become T − t0, where t0 is the first scrape of the first batch. Prometheus 2.42
selects a range with both ends included, so the window holds the first and the last sample of
every series that existed since the first batch: nothing is extrapolated, `increase()` is
exactly last − first, and `rate()` that over the window's seconds. So a panel over the range
shows the second batch's increments of the series that existed in the first batch (which is why
zero-filled series matter); a series born in the second batch shows 0 there, its whole value
being its first sample. An instant panel (a table of totals, a gauge) shows the second body.

The expectations (`EXPECTATIONS`, one small function per panel title) are computed from the raw
rows only, never from chdb or the exposition: the metrics' rules of tinybird/README.md
("Metrics") applied to the rows, in `Served`. Each is computed twice: as the panel must show it
(series born in the second batch contribute nothing to an increase) and as the rows say it
happened (every second-batch row counted). Both are asserted: every panel shows what happened,
the first call of a tool listed before, its first panic and an unknown tool's first call
included, because the project serves their series at 0 in advance. The summary printed at the
end of the module lists every panel with both values.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path

import pytest

from dashboard_rows import Batches
from e2e_support import REPO_ROOT, Row, parse_row
from prom_text import nearest_rank
from prometheus_server import ExpositionServer, PrometheusServer
from tinybird_project import Project, Workspace

TINYBIRD_DIR = REPO_ROOT / "tinybird"
DASHBOARD_PATH = TINYBIRD_DIR / "grafana" / "dashboard.json"
ENDPOINT = "api_prometheus"

# The buckets of both OpenTelemetry histograms (tinybird/README.md), in seconds.
BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, math.inf)
HANDLER_KINDS = ("tool", "prompt", "resource")
METHOD_OF_KIND = {"tool": "tools/call", "prompt": "prompts/get", "resource": "resources/read"}
KIND_OF_LISTING = {"tools/list": "tool", "prompts/list": "prompt", "resources/list": "resource"}
# Rows that are requests or notifications (`mcp_requests`), and rows that are handler calls
# (`mcp_calls`; '' is the template's producers).
REQUEST_KINDS = (*HANDLER_KINDS, "request", "notification", "missing_capability")
CALL_KINDS = ("", *HANDLER_KINDS)
# The outcomes every handler's `mcp_calls_total` has at 0 before they happen.
ZERO_FILLED_OUTCOMES = ("ok", "error", "panic", "cancelled")
FAILED = ("error", "panic")
OTHER = "_OTHER"
# The MCP methods `mcp_server_requests_total` starts at 0 (tinybird/README.md, "Metrics").
MCP_METHODS = (
    "initialize", "ping", "server/discover", "completion/complete", "logging/setLevel",
    "tools/list", "tools/call", "prompts/list", "prompts/get",
    "resources/list", "resources/templates/list", "resources/read", "resources/subscribe", "resources/unsubscribe",
    "tasks/get", "tasks/result", "tasks/list", "tasks/cancel",
    "notifications/initialized", "notifications/cancelled", "notifications/progress",
    "notifications/roots/list_changed",
)
# The labels of a query's result that Prometheus adds (the target's) or keeps (the name).
SCRAPE_LABELS = {"__name__", "job", "instance"}
# Scrapes of each body stored before the test moves on: `rate` and `increase` need two samples.
SCRAPES_PER_BODY = 2
# The bound of each wait for a body's scrapes. The whole setup stays well inside the suite's
# per-test timeout (60 s), which the first test using it pays: producing the rows takes about
# 4 s, deploying and rendering 1 s, the first body about 8 s (Prometheus takes its new target
# about 5 s after it is ready), the second 2-3 s; 15 s in all here, 25 s beside two busy loops.
SCRAPE_WAIT_S = 20.0

Labels = frozenset[tuple[str, str]]
Series = dict[Labels, float]


def labels(**pairs: str) -> Labels:
    """A label set as Prometheus stores it: an empty value is no label at all."""
    return frozenset((key, value) for key, value in pairs.items() if value != "")


def label(series: Labels, key: str) -> str:
    return dict(series).get(key, "")


def show(series: Labels) -> str:
    return "{" + ", ".join(f'{key}="{value}"' for key, value in sorted(series)) + "}"


# --------------------------------------------------------------------------------------------
# What the endpoint serves, computed from the rows by tinybird/README.md's rules


def floor_second(at: datetime) -> datetime:
    """A row's time as the landing datasource stores it (`DateTime`: whole seconds)."""
    return at.replace(microsecond=0)


@dataclass(frozen=True)
class Served:
    """What the endpoint serves once it holds `rows` (everything appended so far), rendered at
    `rendered_at`, by the rules of tinybird/README.md's "Metrics": each metric as a map from
    label set to value; the histograms as the observations of each series. Series at 0 are the
    README's zero-filled ones: every outcome of a handler listed or called, -32602 rejections of
    every kind served, the success operation of every operation seen and of every listed
    handler (on the transport and protocol it was listed on), a session histogram from the first
    session row."""

    rows: tuple[Row, ...]
    rendered_at: datetime

    # -- which rows are what

    @cached_property
    def calls(self) -> list[Row]:
        """Handler calls (`mcp_calls`)."""
        return [row for row in self.rows if row.kind in CALL_KINDS]

    @cached_property
    def requests(self) -> list[Row]:
        """Requests and notifications (`mcp_requests`)."""
        return [row for row in self.rows if row.kind in REQUEST_KINDS]

    @cached_property
    def listings(self) -> set[tuple[str, str, str, str, str, str]]:
        """(app, version, kind, name, transport, protocol) of every name a listing advertised."""
        listed = set()
        for row in self.rows:
            if row.kind == "request" and row.method in KIND_OF_LISTING and row.listed:
                for name in row.listed:
                    listed.add((app(row), version(row), KIND_OF_LISTING[row.method], name, row.transport,
                                row.protocol_version))
        return listed

    @cached_property
    def known(self) -> set[tuple[str, str, str]]:
        """(app, kind, name) of the handlers that label series: listed, or called and not
        refused with a JSON-RPC error. Any other name a call carried is `_OTHER`."""
        known = {(a, kind, name) for a, _, kind, name, _, _ in self.listings}
        for row in self.calls:
            if row.kind in HANDLER_KINDS and not row.error_type.startswith("-"):
                known.add((app(row), row.kind, row.name))
        return known

    def handler(self, row: Row, name: str | None = None) -> str:
        name = row.name if name is None else name
        return name if (app(row), row.kind, name) in self.known else OTHER

    # -- counters and gauges

    @cached_property
    def calls_total(self) -> Series:
        """`mcp_calls_total`."""
        counted: Counter[Labels] = Counter()
        handlers = {(a, v, kind, name) for a, v, kind, name, _, _ in self.listings}
        for row in self.calls:
            if row.kind in HANDLER_KINDS:
                key = (app(row), version(row), row.kind, self.handler(row))
                handlers.add(key)
                counted[handler_labels(*key, outcome=row.outcome)] += 1
        # `_OTHER` of every kind a server lists: an unknown tool's first call is seen too.
        handlers |= {(a, v, kind, OTHER) for a, v, kind, _, _, _ in self.listings}
        for key in handlers:
            for outcome in ZERO_FILLED_OUTCOMES:
                counted[handler_labels(*key, outcome=outcome)] += 0
        return dict(counted)

    @cached_property
    def rejected_calls_total(self) -> Series:
        """`mcp_rejected_calls_total`."""
        counted: Counter[Labels] = Counter()
        for row in self.calls:
            if row.kind in HANDLER_KINDS:
                counted[labels(app_name=app(row), version=version(row), kind=row.kind, error_type="-32602")] += 0
                if row.error_type.startswith("-"):
                    counted[labels(app_name=app(row), version=version(row), kind=row.kind,
                                   error_type=row.error_type)] += 1
        return dict(counted)

    @cached_property
    def listed_handlers(self) -> Series:
        """`mcp_listed_handlers`."""
        return {labels(app_name=a, version=v, kind=kind, name=name): 1.0 for a, v, kind, name, _, _ in self.listings}

    @cached_property
    def operations(self) -> dict[Labels, list[float]]:
        """`mcp_server_operation_duration_seconds`: the durations (s) of each series."""
        observed: dict[Labels, list[float]] = defaultdict(list)
        successes = set()
        for row in self.requests:
            if row.record.get("duration_ms") is None:
                continue
            method = row.method or METHOD_OF_KIND.get(row.kind, "")
            name = ""
            if method in METHOD_OF_KIND.values():
                recorded = row.name if row.kind in HANDLER_KINDS else row.record.get("name", "")
                name = self.handler(row, recorded) if row.kind in HANDLER_KINDS else recorded
            key = (app(row), version(row), method, name, row.transport, row.protocol_version)
            observed[operation_labels(*key, error_type=row.error_type)].append(row.duration_ms / 1000)
            if name != OTHER:
                successes.add(key)
        for a, v, kind, name, transport, protocol in self.listings:
            successes.add((a, v, METHOD_OF_KIND[kind], name, transport, protocol))
            successes.add((a, v, METHOD_OF_KIND[kind], OTHER, transport, protocol))
        for key in successes:
            for error_type in zero_filled_error_types(method=key[2], name=key[3]):
                observed[operation_labels(*key, error_type=error_type)] += []
        return dict(observed)

    @cached_property
    def server_requests_total(self) -> Series:
        """`mcp_server_requests_total`: the operations by method, transport and protocol, every
        MCP method at 0 on each transport and protocol a server was seen on."""
        counted: Counter[Labels] = Counter()
        seen = set()
        for row in self.requests:
            if row.record.get("duration_ms") is None:
                continue
            method = row.method or METHOD_OF_KIND.get(row.kind, "")
            seen.add((app(row), version(row), row.transport, row.protocol_version))
            counted[request_labels(app(row), version(row), method, row.transport, row.protocol_version)] += 1
        for a, v, transport, protocol in seen:
            for method in MCP_METHODS:
                counted[request_labels(a, v, method, transport, protocol)] += 0
        return dict(counted)

    @cached_property
    def session_groups(self) -> dict[Labels, tuple[int, list[float]]]:
        """Per session series: sessions started, and the durations (s) of those that ended."""
        groups: dict[Labels, tuple[int, list[float]]] = {}
        for row in self.rows:
            if row.kind != "session":
                continue
            series = labels(app_name=app(row), version=version(row), network_transport=row.transport,
                            mcp_protocol_version=row.protocol_version)
            started, ended = groups.get(series, (0, []))
            if row.event == "start":
                started += 1
            elif row.event == "end":
                ended = [*ended, float(row.record.get("duration_ms", 0)) / 1000]
            groups[series] = (started, ended)
        return groups

    @cached_property
    def sessions_total(self) -> Series:
        """`mcp_sessions_total`."""
        return {series: float(started) for series, (started, _) in self.session_groups.items()}

    @cached_property
    def session_durations(self) -> dict[Labels, list[float]]:
        """`mcp_server_session_duration_seconds`: the durations (s) of each series."""
        return {series: ended for series, (_, ended) in self.session_groups.items()}

    @cached_property
    def client_requests_total(self) -> Series:
        """`mcp_client_requests_total`."""
        counted: Counter[Labels] = Counter()
        for row in self.requests:
            name, client_version = row.client
            counted[labels(app_name=app(row), version=version(row), client_name=name or "unknown",
                           client_version=client_version or "unknown")] += 1
        return dict(counted)

    @cached_property
    def model_calls_total(self) -> Series:
        """`mcp_model_calls_total`."""
        counted: Counter[Labels] = Counter()
        for row in self.calls:
            if row.record.get("model"):
                counted[labels(app_name=app(row), version=version(row), gen_ai_request_model=row.record["model"])] += 1
        return dict(counted)

    @cached_property
    def rows_total(self) -> Series:
        """`mcp_analytics_rows_total`."""
        counted: Counter[Labels] = Counter()
        for row in self.rows:
            counted[labels(app_name=app(row), version=version(row), kind=row.kind or "template")] += 1
        return dict(counted)

    @cached_property
    def last_row_timestamp(self) -> Series:
        """`mcp_analytics_last_row_timestamp_seconds`."""
        last: dict[Labels, float] = {}
        for row in self.rows:
            series = labels(app_name=app(row), version=version(row))
            last[series] = max(last.get(series, 0.0), floor_second(row.started_at()).timestamp())
        return last

    def active(self, key: str) -> Series:
        """`mcp_active_sessions` (`key` "session") or `mcp_active_users` ("user"): distinct
        values among the handler calls of the last 5 minutes and the last hour, for every server
        that sent anything in the last 30 days."""
        now = floor_second(self.rendered_at)
        active: Series = {}
        for a, v in {(app(row), version(row)) for row in self.rows if floor_second(row.started_at()) >= now - timedelta(days=30)}:
            for window, span in (("5m", timedelta(minutes=5)), ("1h", timedelta(hours=1))):
                values = {
                    row.session if key == "session" else row.record.get("user", "")
                    for row in self.calls
                    if (app(row), version(row)) == (a, v) and floor_second(row.started_at()) > now - span
                }
                active[labels(app_name=a, version=v, window=window)] = float(len(values - {""}))
        return active

    @cached_property
    def top_errors(self) -> Series:
        """`mcp_top_errors_24h`: failed calls of the last 24 hours by handler, error type and
        the error's first 80 characters, the 5 most frequent per handler."""
        since = floor_second(self.rendered_at).replace(minute=0, second=0) - timedelta(hours=24)
        counted: Counter[tuple[str, str, str, str, str, str]] = Counter()
        for row in self.calls:
            if row.outcome in FAILED and floor_second(row.started_at()) >= since:
                name = self.handler(row) if row.kind in HANDLER_KINDS else ""
                counted[(app(row), version(row), row.kind, name, row.error_type, row.error[:80])] += 1
        per_handler: dict[tuple[str, ...], list[tuple[int, str, str, str]]] = defaultdict(list)
        for (a, v, kind, name, error_type, error), failures in counted.items():
            per_handler[(a, v, kind, name)].append((failures, error, error_type, kind))
        top: Series = {}
        for (a, v, kind, name), errors in per_handler.items():
            for failures, error, error_type, _ in sorted(errors, key=lambda e: (-e[0], e[1]))[:5]:
                top[labels(app_name=a, version=v, kind=kind, name=name, error_type=error_type, error=error)] = failures
        return top


def app(row: Row) -> str:
    return row.record.get("appName", "")


def version(row: Row) -> str:
    return row.record.get("version", "")


def handler_labels(a: str, v: str, kind: str, name: str, **more: str) -> Labels:
    return labels(app_name=a, version=v, kind=kind, name=name, **more)


def zero_filled_error_types(method: str, name: str) -> tuple[str, ...]:
    """The error types of an operation's series served at 0: a call's success, panic and
    `-32602` rejection (and a tool's `tool_error`); only the rejection for `_OTHER`."""
    if name == OTHER:
        return ("-32602",)
    if method == "tools/call":
        return ("", "tool_error", "panic", "-32602")
    if method in METHOD_OF_KIND.values():
        return ("", "panic", "-32602")
    return ("",)


def request_labels(a: str, v: str, method: str, transport: str, protocol: str) -> Labels:
    """A series of `mcp_server_requests_total`: the attributes that were recorded."""
    return labels(app_name=a, version=v, mcp_method_name=method, network_transport=transport,
                  mcp_protocol_version=protocol)


def operation_labels(a: str, v: str, method: str, name: str, transport: str, protocol: str, error_type: str = "") -> Labels:
    """An operation's series: the OpenTelemetry attributes that apply, and only those."""
    return labels(
        app_name=a,
        version=v,
        mcp_method_name=method,
        gen_ai_tool_name=name if method == "tools/call" else "",
        gen_ai_prompt_name=name if method == "prompts/get" else "",
        mcp_resource_uri=name if method == "resources/read" else "",
        error_type=error_type,
        network_transport=transport,
        mcp_protocol_version=protocol,
    )


# --------------------------------------------------------------------------------------------
# What a panel shows, from the two bodies: PromQL's few operations the dashboard uses


Metric = Callable[[Served], Series]
Observations = Callable[[Served], dict[Labels, list[float]]]


@dataclass(frozen=True)
class Facts:
    """The two bodies Prometheus scraped (`before`: the first batch; `after`: both), the
    dashboard's variables, and `truth`: False to compute what a panel over the range must show
    (a series born in the second body adds nothing to an increase: its first sample is its
    whole value), True for what the rows say happened in the second batch."""

    before: Served
    after: Served
    variables: Mapping[str, str]
    at: float  # T: the last scrape, where every query is evaluated
    window_s: float  # T − t0
    truth: bool = False

    def increase(self, metric: Metric) -> Series:
        """`increase(metric[T − t0])` of every series the second body has."""
        first, last = metric(self.before), metric(self.after)
        return {
            series: value - first.get(series, 0.0) if (series in first or self.truth) else 0.0
            for series, value in last.items()
        }

    def increase_observations(self, metric: Observations) -> dict[Labels, list[float]]:
        """A histogram's observations within the range, per series (what the increase of its
        buckets holds)."""
        first, last = metric(self.before), metric(self.after)
        increased = {}
        for series, durations in last.items():
            if series in first or self.truth:
                remaining = Counter(durations)
                remaining.subtract(Counter(first.get(series, [])))
                increased[series] = sorted(remaining.elements())
            else:
                increased[series] = []
        return increased

    def now(self, metric: Metric) -> Series:
        """`metric` at T: the second body."""
        return dict(metric(self.after))

    def filtered(self, series: Mapping[Labels, object], **matchers: str) -> dict:
        """`{app_name=~"$app_name", version=~"$version", ...}`: each matcher a regular
        expression anchored at both ends, as PromQL's `=~`; `$name` takes the variable."""
        wanted = {"app_name": "$app_name", "version": "$version", **matchers}
        patterns = {key: re.compile(substitute(value, self.variables)) for key, value in wanted.items()}
        return {s: v for s, v in series.items() if all(p.fullmatch(label(s, k)) for k, p in patterns.items())}


def sum_by(series: Mapping[Labels, float], *by: str) -> Series:
    """`sum by (by) (series)`."""
    summed: Series = defaultdict(float)
    for s, value in series.items():
        summed[labels(**{key: label(s, key) for key in by})] += value
    return dict(summed)


def total(series: Mapping[Labels, float]) -> float:
    return sum(series.values())


def one(value: float) -> Series:
    """A result of one series without labels (`sum(...)`, `count(...)`, a ratio of sums)."""
    return {frozenset(): value}


def observations_by(observed: Mapping[Labels, list[float]], *by: str) -> dict[Labels, list[float]]:
    merged: dict[Labels, list[float]] = defaultdict(list)
    for s, durations in observed.items():
        merged[labels(**{key: label(s, key) for key in by})] += durations
    return dict(merged)


# --------------------------------------------------------------------------------------------
# The expectations, per panel title


@dataclass(frozen=True)
class Expected:
    """What one query must return. `check`: "exact" (the value itself), "per_second" (a rate:
    the value times the window is the increase), "bucket" (a quantile: in the bucket of the
    rows' own quantile, or the next, as a histogram allows)."""

    values: Series
    check: str = "exact"


Expectation = Callable[[Facts], dict[str, Expected]]


def rate(values: Series) -> dict[str, Expected]:
    return {"A": Expected(values, "per_second")}


def exact(values: Series) -> dict[str, Expected]:
    return {"A": Expected(values)}


def quantiles(observed: Mapping[Labels, list[float]], refs: Iterable[tuple[str, float]]) -> dict[str, Expected]:
    """Per target, the rows' own quantile of each series with observations (nearest rank)."""
    return {
        ref: Expected({s: nearest_rank(durations, q) for s, durations in observed.items() if durations}, "bucket")
        for ref, q in refs
    }


P50_P95_P99 = (("A", 0.5), ("B", 0.95), ("C", 0.99))


def calls_in_range(f: Facts, **matchers: str) -> Series:
    return f.filtered(f.increase(lambda s: s.calls_total), **matchers)


def ratio(numerator: float, denominator: float) -> Series:
    """`a / (b > 0)` of two single-series results: no series when nothing was divided."""
    return one(numerator / denominator) if denominator else {}


def clients(f: Facts) -> dict[str, Expected]:
    """The client names (of clients that said theirs) on the second batch's requests: whether
    their series is old (dash-http) or new (dash-stdio 1.1.0), the panel counts them."""
    second = f.after.requests[len(f.before.requests):]
    named = {labels(app_name=app(row), version=version(row), client_name=row.client[0]): 1.0
             for row in second if row.client[0]}
    return exact(one(float(len({label(s, "client_name") for s in f.filtered(named)}))))


def tool_error_rate(f: Facts) -> dict[str, Expected]:
    tools = calls_in_range(f, kind="tool", name="$tool")
    failed = sum_by(f.filtered(tools, outcome="error|panic"), "name")
    every = sum_by(tools, "name")
    return exact({s: failed.get(s, 0.0) / n for s, n in every.items() if n > 0})


def tool_latency(f: Facts) -> dict[str, Expected]:
    observed = f.filtered(f.increase_observations(lambda s: s.operations), mcp_method_name="tools/call",
                          gen_ai_tool_name="$tool")
    return quantiles(observations_by(observed, "gen_ai_tool_name"), P50_P95_P99)


def never_called(f: Facts) -> dict[str, Expected]:
    """Listed, minus every name a call row carried: straight from the rows."""
    listed = f.filtered(f.now(lambda s: s.listed_handlers))
    called = {(app(row), version(row), row.kind, row.name) for row in f.after.calls if row.kind in HANDLER_KINDS}
    return exact({
        s: 1.0 for s in listed
        if (label(s, "app_name"), label(s, "version"), label(s, "kind"), label(s, "name")) not in called
    })


def since_last_row(f: Facts) -> dict[str, Expected]:
    return exact({s: f.at - t for s, t in f.filtered(f.now(lambda s: s.last_row_timestamp)).items()})


EXPECTATIONS: dict[str, Expectation] = {
    # Overview
    "Handler calls": lambda f: exact(one(total(calls_in_range(f)))),
    "Error rate": lambda f: exact(ratio(total(calls_in_range(f, outcome="error|panic")), total(calls_in_range(f)))),
    "Tool call latency": lambda f: quantiles(
        observations_by(f.filtered(f.increase_observations(lambda s: s.operations), mcp_method_name="tools/call")),
        P50_P95_P99,
    ),
    "Active sessions (5 min)": lambda f: exact(one(total(f.filtered(f.now(lambda s: s.active("session")), window="5m")))),
    "Clients": clients,
    "Calls/s by kind": lambda f: rate(sum_by(calls_in_range(f), "kind")),
    # Per tool
    "Tool calls/s by outcome": lambda f: rate(sum_by(calls_in_range(f, kind="tool", name="$tool"), "name", "outcome")),
    "Tool error rate": tool_error_rate,
    "Tool latency": tool_latency,
    # Sessions and clients
    "Sessions started": lambda f: exact(one(total(f.filtered(f.increase(lambda s: s.sessions_total))))),
    "Session duration": lambda f: quantiles(
        observations_by(f.filtered(f.increase_observations(lambda s: s.session_durations))), (("A", 0.5), ("B", 0.95))
    ),
    "Calls per session": lambda f: exact(
        ratio(total(calls_in_range(f)), total(f.filtered(f.increase(lambda s: s.sessions_total))))
    ),
    "Requests by client (all time)": lambda f: exact(
        sum_by(f.filtered(f.now(lambda s: s.client_requests_total)), "client_name", "client_version")
    ),
    "Requests/s by protocol version": lambda f: rate(
        sum_by(f.filtered(f.increase(lambda s: s.server_requests_total)), "mcp_protocol_version")
    ),
    "Requests/s by transport": lambda f: rate(
        sum_by(f.filtered(f.increase(lambda s: s.server_requests_total)), "network_transport")
    ),
    # Failures
    "Rejected calls/s by error type": lambda f: rate(
        sum_by(f.filtered(f.increase(lambda s: s.rejected_calls_total)), "kind", "error_type")
    ),
    "Panics/s by handler": lambda f: rate(sum_by(calls_in_range(f, outcome="panic"), "kind", "name")),
    "Top errors (24 h)": lambda f: exact(
        sum_by(f.filtered(f.now(lambda s: s.top_errors)), "kind", "name", "error_type", "error")
    ),
    "Failed calls/s by handler": lambda f: rate(sum_by(calls_in_range(f, outcome="error|panic"), "kind", "name")),
    # Adoption
    "Handlers listed, never called": never_called,
    "Requests by protocol version (all time)": lambda f: exact(
        sum_by(f.filtered(f.now(lambda s: s.server_requests_total)), "mcp_protocol_version")
    ),
    "Calls by model (all time)": lambda f: exact(
        sum_by(f.filtered(f.now(lambda s: s.model_calls_total)), "gen_ai_request_model")
    ),
    "Active users": lambda f: exact(sum_by(f.filtered(f.now(lambda s: s.active("user"))), "window")),
    "Requests/s by MCP method": lambda f: rate(
        sum_by(f.filtered(f.increase(lambda s: s.server_requests_total)), "mcp_method_name")
    ),
    # Health
    "Rows received/s by kind": lambda f: rate(
        sum_by(f.filtered(f.increase(lambda s: s.rows_total)), "app_name", "version", "kind")
    ),
    "Time since last row": since_last_row,
}
# --------------------------------------------------------------------------------------------
# The dashboard


def dashboard() -> dict:
    return json.loads(DASHBOARD_PATH.read_text())


def panels(board: dict) -> list[dict]:
    """Every panel but rows, collapsed rows' panels included."""
    found = []
    for panel in board["panels"]:
        if panel.get("type") == "row":
            found += panel.get("panels", [])
        else:
            found.append(panel)
    return found


VARIABLE = re.compile(r"\$(\w+)")


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """`expr` with Grafana's variables replaced, as Grafana does before PromQL sees it; a
    variable this test does not know fails, so that a new one cannot go unchecked."""

    def value(match: re.Match[str]) -> str:
        name = match[1]
        assert name in variables, f"{expr}: variable ${name} is not one the test substitutes"
        return variables[name]

    return VARIABLE.sub(value, expr)


# --------------------------------------------------------------------------------------------
# The path: rows → project → body → Prometheus


@dataclass
class Scraped:
    """Prometheus holding both bodies, and what the expectations need."""

    prometheus: PrometheusServer
    before: Served
    after: Served
    t0: float  # the first scrape of the first body
    at_before: float  # the last scrape of the first body
    at: float  # T: the last scrape of the second body
    summary: list[dict] = field(default_factory=list)

    @property
    def window(self) -> str:
        """T − t0 as a PromQL duration; both are whole milliseconds."""
        return f"{round((self.at - self.t0) * 1000)}ms"

    @property
    def window_s(self) -> float:
        return round((self.at - self.t0) * 1000) / 1000

    def variables(self, tool: str = ".*") -> dict[str, str]:
        """Grafana's variables: All (`.*`) everywhere, or one tool."""
        return {
            "app_name": ".*",
            "version": ".*",
            "tool": tool,
            "__range": self.window,
            "__rate_interval": self.window,
        }

    def facts(self, variables: Mapping[str, str], truth: bool = False) -> Facts:
        return Facts(self.before, self.after, variables, self.at, self.window_s, truth)

    def query(self, expr: str, variables: Mapping[str, str], at: float | None = None) -> Series:
        """The query's result at T (or `at`), by label set (the target's labels and the name
        left out)."""
        result: Series = {}
        for metric, value in self.prometheus.query(substitute(expr, variables), at=self.at if at is None else at):
            series = frozenset((k, v) for k, v in metric.items() if k not in SCRAPE_LABELS)
            assert series not in result, f"{expr}: two series labelled {show(series)}"
            result[series] = value
        return result


def rows_of(batch: list[dict]) -> tuple[Row, ...]:
    return tuple(parse_row(json.dumps(row)) for row in batch)


@pytest.fixture(scope="module")
def scraped(dashboard_batches: Batches, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    """Both batches through the project and a real Prometheus: the first appended, rendered,
    served and scraped twice; then the second likewise. Prometheus and the exposition server are
    stopped, and chdb closed, whatever happens."""
    workspace: Workspace | None = Workspace(Project.load(TINYBIRD_DIR), tmp_path_factory.mktemp("chdb"))
    exposition: ExpositionServer | None = None
    prometheus: PrometheusServer | None = None
    try:
        first, second = rows_of(dashboard_batches.first), rows_of(dashboard_batches.second)
        workspace.append("mcp_logs", dashboard_batches.first)
        body_before, before_at = workspace.endpoint(ENDPOINT, "Prometheus"), datetime.now(UTC)
        exposition = ExpositionServer(body=body_before)
        prometheus = PrometheusServer(exposition)
        scrapes_before = prometheus.await_generation(0, SCRAPES_PER_BODY, SCRAPE_WAIT_S)

        workspace.append("mcp_logs", dashboard_batches.second)
        body_after, after_at = workspace.endpoint(ENDPOINT, "Prometheus"), datetime.now(UTC)
        workspace.close()  # chdb holds one session per process: free it for other modules
        workspace = None
        generation = exposition.set_body(body_after)
        scrapes_after = prometheus.await_generation(generation, SCRAPES_PER_BODY, SCRAPE_WAIT_S)

        state = Scraped(
            prometheus=prometheus,
            before=Served(first, before_at),
            after=Served(first + second, after_at),
            t0=scrapes_before[0],
            at_before=scrapes_before[-1],
            at=scrapes_after[-1],
        )
        yield state
        print_summary(state, tmp_path_factory.mktemp("dashboard-summary") / "panels.json")
    finally:
        if prometheus is not None:
            prometheus.stop()
        if exposition is not None:
            exposition.stop()
        if workspace is not None:
            workspace.close()


# --------------------------------------------------------------------------------------------
# Comparing


def bucket_index(seconds: float) -> int:
    return next(index for index, bound in enumerate(BUCKETS) if seconds <= bound)


def mismatches(shown: Series, expected: Expected, window_s: float) -> list[str]:
    """What differs between a query's result and its expectation, one line each."""
    problems = []
    if shown.keys() != expected.values.keys():
        for series in sorted(shown.keys() - expected.values.keys(), key=show):
            problems.append(f"unexpected series {show(series)} = {shown[series]}")
        for series in sorted(expected.values.keys() - shown.keys(), key=show):
            problems.append(f"missing series {show(series)} (expected {expected.values[series]})")
    for series in shown.keys() & expected.values.keys():
        value, wanted = shown[series], expected.values[series]
        if math.isnan(value):  # a panel showing NaN shows nothing
            problems.append(f"{show(series)}: NaN, expected {wanted}")
        elif expected.check == "per_second":
            if not math.isclose(value * window_s, wanted, rel_tol=1e-9, abs_tol=1e-9):
                problems.append(f"{show(series)}: {value}/s × {window_s} s = {value * window_s}, expected {wanted}")
        elif expected.check == "bucket":
            if abs(bucket_index(value) - bucket_index(wanted)) > 1:
                problems.append(f"{show(series)}: {value} s, more than a bucket from the rows' {wanted} s")
        elif not math.isclose(value, wanted, rel_tol=1e-9, abs_tol=1e-9):
            problems.append(f"{show(series)}: {value}, expected {wanted}")
    return problems


def evaluate_dashboard(state: Scraped, variables: Mapping[str, str], record: bool) -> list[str]:
    """Every target of every panel against its expectation; returns the problems."""
    problems = []
    modelled = state.facts(variables)
    truth = state.facts(variables, truth=True)
    for panel in panels(dashboard()):
        title = panel["title"]
        expect = EXPECTATIONS.get(title)
        if expect is None:
            problems.append(f"{title}: no expectation (add one to EXPECTATIONS)")
            continue
        expected, happened = expect(modelled), expect(truth)
        for target in panel["targets"]:
            ref = target["refId"]
            if ref not in expected:
                problems.append(f"{title} {ref}: no expectation for this target")
                continue
            shown = state.query(target["expr"], variables)
            found = mismatches(shown, expected[ref], state.window_s)
            # And as the rows say it happened: every second-batch row counted, series born in
            # the second batch included. Equal to the above wherever the project's zero-filled
            # series let `increase()` see everything.
            found += [f"as the rows say it happened: {line}" for line in mismatches(shown, happened[ref], state.window_s)]
            if not shown:
                found.append("no data")
            problems += [f"{title} {ref} [{variables['tool']}]: {line}" for line in found]
            if record:
                state.summary.append(summary_entry(panel, target, shown, expected[ref], happened[ref], state.window_s))
    return problems


def summary_entry(panel: dict, target: dict, shown: Series, expected: Expected, happened: Expected, window_s: float) -> dict:
    scale = window_s if expected.check == "per_second" else 1.0

    def text(series: Mapping[Labels, float], factor: float) -> str:
        if not series:
            return "(none)"
        return "; ".join(f"{'/'.join(v for _, v in sorted(s)) or '·'}={series[s] * factor:.6g}" for s in sorted(series, key=show))

    return {
        "panel": panel["title"],
        "target": f"{target['refId']} {target.get('legendFormat', '')}".strip(),
        "query": target["expr"],
        "check": expected.check,
        "shown": text(shown, scale),
        "from_rows": text(expected.values, 1.0),
        "as_happened": text(happened.values, 1.0),
        "exact_with_the_project": happened.values == expected.values or expected.check == "bucket",
    }


def print_summary(state: Scraped, path: Path) -> None:
    """The table the issue's closing note needs: per panel target, the value Prometheus showed
    (a rate times the window), the value computed from the rows, and the value as the rows say
    it happened where the project's series cannot show it; also written as JSON to `path`."""
    if not state.summary:
        return
    path.write_text(json.dumps(state.summary, indent=2))
    print(f"\n\nDashboard panels at T (window {state.window_s} s; rates shown times the window); JSON: {path}")
    for entry in state.summary:
        flag = "" if entry["exact_with_the_project"] else f"   << as happened: {entry['as_happened']}"
        print(f"- {entry['panel']} [{entry['target']}] ({entry['check']}): shown {entry['shown']} | rows {entry['from_rows']}{flag}")


# --------------------------------------------------------------------------------------------
# The tests


def test_every_panel_has_a_query_and_an_expectation() -> None:
    """Titles are unique, every panel has a target with `expr`, and every title has an
    expectation here (and every expectation a panel): a new panel cannot go unchecked."""
    titles = [panel["title"] for panel in panels(dashboard())]
    assert len(titles) == len(set(titles)), f"titles used twice: {[t for t in titles if titles.count(t) > 1]}"
    for panel in panels(dashboard()):
        assert panel.get("targets") and all(target.get("expr") for target in panel["targets"]), panel["title"]
    assert set(titles) == set(EXPECTATIONS), (
        f"panels without expectation: {set(titles) - set(EXPECTATIONS)}; "
        f"expectations without panel: {set(EXPECTATIONS) - set(titles)}"
    )


def test_dashboard_is_importable_with_a_prometheus_datasource() -> None:
    """What Grafana's import needs: the datasource input, unique panel ids, every panel and
    variable on the `${datasource}` variable, and the variables All as `.*` over our metrics."""
    board = dashboard()
    assert {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"} in board["__requires"]
    assert "__inputs" in board
    ids = [panel["id"] for panel in board["panels"]] + [p["id"] for row in board["panels"] for p in row.get("panels", [])]
    assert len(ids) == len(set(ids))
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name in ("app_name", "version", "tool"):
        assert variables[name]["allValue"] == ".*" and variables[name]["includeAll"], name
        assert "mcp_calls_total" in variables[name]["definition"], variables[name]["definition"]
    for panel in panels(board):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert 'app_name=~"$app_name"' in target["expr"] and 'version=~"$version"' in target["expr"], (
                f"{panel['title']}: not filtered by app and version: {target['expr']}"
            )


def test_every_panel_shows_what_the_rows_say(scraped: Scraped) -> None:
    """Every target of every panel, with All selected, equals its expectation from the rows
    (and shows data, unless the rows have none for it)."""
    problems = evaluate_dashboard(scraped, scraped.variables(), record=True)
    assert not problems, "\n".join(problems)


def test_every_panel_with_one_tool_picked(scraped: Scraped) -> None:
    """The same with `$tool` = `lookup`, the tool first called in the second batch: the
    per-tool panels narrow to it, the others do not change."""
    problems = evaluate_dashboard(scraped, scraped.variables(tool="lookup"), record=False)
    assert not problems, "\n".join(problems)


def query_panel(scraped: Scraped, title: str, tool: str = ".*", ref: str = "A", at: float | None = None) -> Series:
    (panel,) = [panel for panel in panels(dashboard()) if panel["title"] == title]
    (target,) = [target for target in panel["targets"] if target["refId"] == ref]
    return scraped.query(target["expr"], scraped.variables(tool), at)


def per_window(scraped: Scraped, series: Series) -> dict[str, float]:
    """A rate panel's series, as calls in the window, by their label values."""
    return {",".join(v for _, v in sorted(s)): round(value * scraped.window_s, 9) for s, value in series.items()}


def test_first_call_of_a_new_tool_and_first_panic_are_counted(scraped: Scraped) -> None:
    """`lookup`, listed in the first batch and first called in the second, `crash`, whose first
    panic is in the second, and the first call of an unknown tool (`_OTHER`): all counted over
    the range, because their series were served at 0 since the listing."""
    second = rows_of_batch(scraped, 2)
    lookup_ok = sum(1 for row in second if row.kind == "tool" and row.name == "lookup" and row.outcome == "ok")
    panics = sum(1 for row in second if row.kind == "tool" and row.name == "crash" and row.outcome == "panic")
    unknown = sum(1 for row in second if row.kind == "tool" and scraped.after.handler(row) == OTHER)
    assert lookup_ok == 2 and panics == 1 and unknown == 1, "the second batch is not what this test relies on"
    assert not any(scraped.before.handler(row) == OTHER for row in scraped.before.calls), "an unknown tool in batch 1"

    by_outcome = per_window(scraped, query_panel(scraped, "Tool calls/s by outcome", tool="lookup"))
    assert by_outcome["lookup,ok"] == lookup_ok, by_outcome
    assert per_window(scraped, query_panel(scraped, "Panics/s by handler"))["tool,crash"] == panics
    failed_by_handler = per_window(scraped, query_panel(scraped, "Failed calls/s by handler"))
    assert failed_by_handler["tool,_OTHER"] == unknown
    (calls,) = query_panel(scraped, "Handler calls").values()
    made = sum(1 for row in second if row.kind in HANDLER_KINDS)
    assert calls == made
    (error_rate,) = query_panel(scraped, "Error rate").values()
    failed = sum(1 for row in second if row.kind in HANDLER_KINDS and row.outcome in FAILED)
    assert error_rate == pytest.approx(failed / made)


def rows_of_batch(scraped: Scraped, batch: int) -> list[Row]:
    first = len(scraped.before.rows)
    return list(scraped.after.rows[:first] if batch == 1 else scraped.after.rows[first:])


def test_rejections_never_called_top_errors_and_clients(scraped: Scraped) -> None:
    """The failures and adoption panels, against the rows directly: the second batch's -32602
    rejections (the handler's and the unknown tool's), the handlers listed and never called, the
    error texts, the clients and protocol versions."""
    second = rows_of_batch(scraped, 2)
    rejected = Counter((row.kind, row.error_type) for row in second if row.error_type.startswith("-"))
    assert rejected == {("tool", "-32602"): 2}, rejected
    shown = per_window(scraped, query_panel(scraped, "Rejected calls/s by error type"))
    assert shown == {"-32602,tool": 2, "-32602,prompt": 0, "-32602,resource": 0}, shown

    def never_called(rows: tuple[Row, ...]) -> set[str]:
        listed = {(KIND_OF_LISTING[row.method], name) for row in rows
                  if row.kind == "request" and row.method in KIND_OF_LISTING for name in row.listed or []}
        return {f"{kind}:{name}" for kind, name in listed - {(row.kind, row.name) for row in rows}}

    # Before the second batch, `lookup` and `crash` were listed and never called; after, they
    # were called (crash panicked, lookup also failed): they leave the list.
    never_before = {f"{label(s, 'kind')}:{label(s, 'name')}"
                    for s in query_panel(scraped, "Handlers listed, never called", at=scraped.at_before)}
    assert never_before == never_called(scraped.before.rows) >= {"tool:lookup", "tool:crash"}, never_before
    never_after = {f"{label(s, 'kind')}:{label(s, 'name')}" for s in query_panel(scraped, "Handlers listed, never called")}
    assert never_after == never_called(scraped.after.rows) and never_after, never_after
    assert not never_after & {"tool:lookup", "tool:crash"}, never_after

    errors = {(row.name if (app(row), row.kind, row.name) in scraped.after.known else OTHER, row.error[:80])
              for row in scraped.after.calls if row.outcome in FAILED}
    shown_errors = {(label(s, "name"), label(s, "error")) for s in query_panel(scraped, "Top errors (24 h)")}
    assert shown_errors == errors, (shown_errors, errors)

    (clients_shown,) = query_panel(scraped, "Clients").values()
    assert clients_shown == len({row.client[0] for row in second if row.kind in REQUEST_KINDS and row.client[0]})
    versions = Counter(row.protocol_version for row in scraped.after.requests)
    shown_versions = {label(s, "mcp_protocol_version"): v
                      for s, v in query_panel(scraped, "Requests by protocol version (all time)").items()}
    assert shown_versions == versions
    (sessions,) = query_panel(scraped, "Sessions started").values()
    assert sessions == sum(1 for row in second if row.kind == "session" and row.event == "start")


def test_tool_variable_lists_every_tool_served(scraped: Scraped) -> None:
    """`$tool`'s query (`label_values(mcp_calls_total{kind="tool", ...}, name)`) offers every
    tool listed or called, and `_OTHER` once a name was refused."""
    variable = {v["name"]: v for v in dashboard()["templating"]["list"]}["tool"]
    match = re.fullmatch(r"label_values\((.*), (\w+)\)", variable["definition"])
    assert match, variable["definition"]
    selector = substitute(match[1], scraped.variables())
    names = {metric[match[2]] for metric, _ in scraped.prometheus.query(f"count by ({match[2]}) ({selector})", at=scraped.at)}
    tools = {row.name for row in scraped.after.rows if row.kind == "tool" and not row.error_type.startswith("-")}
    tools |= {name for row in scraped.after.rows if row.method == "tools/list" for name in row.listed or []}
    refused = {row.name for row in scraped.after.rows if row.kind == "tool"} - tools
    assert names == tools | ({OTHER} if refused else set()), names
