"""The rmcp example servers driven by the official MCP TypeScript SDK (`ts/client.mjs`, pinned in
`ts/package-lock.json`) over stdio and streamable HTTP; the rows at the receiver must follow the
analytics contract of `mcp_analytics::rmcp::instrument!`:

- one row per handler call (`kind` tool / prompt / resource, `method` tools/call / prompts/get /
  resources/read, the handler's name in `tool` / `prompt` / `resource`), `outcome` ok / error /
  panic, `error_type` `tool_error` for an `isError` result, the JSON-RPC code (a string) for a
  JSON-RPC error, `panic` for a panic;
- one `kind: request` row per other request (`method` initialize, tools/list, ...), one
  `kind: notification` row per client notification, `kind: session` rows `event` start / end;
- on every row the client's `client_name` / `client_version`, the negotiated `protocol_version`,
  `transport` (`pipe` on stdio, `tcp` on HTTP), the request's JSON-RPC id in `request_id`, and
  the `session` column: the process's one id on stdio, the client's `mcp-session-id` on HTTP;
- level `error` for outcome error / panic, `info` otherwise.

The client's own report (what it sent, what each step got) is checked first: when that fails the
harness or the server misbehaved, not analytics. The row checks then collect every mismatch and
fail once, listing them with the rows received.

Needs Node.js 20+ and `npm ci` in tests/e2e/ts (tests/run.sh does it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from e2e_support import (
    APP_NAME,
    RECORD_KEYS,
    TOKEN,
    Receiver,
    Row,
    match_events,
)
from test_http import HttpServer

TS_DIR = Path(__file__).resolve().parent / "ts"
CLIENT_SCRIPT = TS_DIR / "client.mjs"
SDK_PACKAGE = TS_DIR / "node_modules" / "@modelcontextprotocol" / "sdk" / "package.json"
# How long one client run may take: its own deadline is 45 s; the crash step alone waits 3 s.
CLIENT_TIMEOUT_S = 40
CRASH_TIMEOUT_MS = 3000
ROWS_TIMEOUT_S = 5.0

HANDLER_KIND = {"tools/call": "tool", "prompts/get": "prompt", "resources/read": "resource"}
CONTRACT_KEYS = RECORD_KEYS | {
    "method",
    "error_type",
    "protocol_version",
    "transport",
    "request_id",
    "event",
}
LEVEL_OF_OUTCOME = {"ok": "info", "cancelled": "info", "error": "error", "panic": "error"}


# --------------------------------------------------------------------------------------------
# Running the client


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


@pytest.fixture
def clients() -> Iterator[list[ClientRun]]:
    """The clients a test started; killed at teardown if still running."""
    runs: list[ClientRun] = []
    try:
        yield runs
    finally:
        for run in runs:
            run.kill()


# --------------------------------------------------------------------------------------------
# What the client saw


def steps_by_label(report: dict) -> dict[str, dict]:
    return {step["step"]: step for step in report["steps"]}


def check_client_saw(report: dict) -> None:
    """What the server answered each step, as the scripted session expects it: when this fails,
    the server or the harness misbehaved, whatever analytics recorded."""
    steps = steps_by_label(report)
    who = report["client_info"]["name"]

    def want(label: str, outcomes: set[str], code: int | None = None) -> dict:
        step = steps.get(label)
        assert step is not None, f"{who}: no step {label!r} in {list(steps)}"
        assert step["outcome"] in outcomes, f"{who}: {label} gave {step}, expected one of {outcomes}"
        if code is not None and step["outcome"] == "error":
            assert step.get("error_code") == code, f"{who}: {label} gave {step}, expected code {code}"
        return step

    assert report["protocol_version"], f"{who}: no protocol version negotiated: {report['steps'][0]}"
    for label in ("initialize", "tools/list", "prompts/list", "resources/list", "ping"):
        want(label, {"result"})
    assert want("add(2, 3)", {"result"}).get("text") == "5", steps["add(2, 3)"]
    assert want("divide(1, 0)", {"is_error"}).get("text") == "division by zero", steps["divide(1, 0)"]
    want("lookup(cobol)", {"error"}, code=-32602)
    want("no_such_tool()", {"error"})
    # The contract's own wording expects a JSON-RPC error; rmcp may answer with an isError result
    # instead: either way the row must say what the client saw (see expected_rows).
    want("add(x)", {"error", "is_error"})
    want("greet(Ada)", {"result"})
    want("read mem://readme", {"result"})
    want("crash()", {"timeout"})
    assert steps["close"]["outcome"] == "closed", f"{who}: close gave {steps['close']}"
    # Every request the client sent had its step (nothing sent behind the script's back).
    requests = Counter(m["method"] for m in report["sent"] if m["type"] == "request")
    scripted = Counter(s["method"] for s in report["steps"] if s["method"])
    assert requests == scripted, f"{who}: requests sent {dict(requests)} != steps {dict(scripted)}"


# --------------------------------------------------------------------------------------------
# Expected rows


@dataclass
class ExpectedRow:
    """One row the contract requires; `fields` are record keys that must hold exactly these
    values (None: the key must be absent)."""

    label: str
    fields: dict[str, object]
    session: str | None = None

    def mismatches(self, row: Row) -> list[str]:
        problems = []
        for key, want in self.fields.items():
            got = row.record.get(key)
            if isinstance(want, str) and got is not None and not isinstance(got, str):
                got = str(got)  # e.g. a numeric request_id
            if got != want:
                problems.append(f"{key} {got!r} != {want!r}")
        if self.session is not None and row.session != self.session:
            problems.append(f"session {row.session!r} != {self.session!r}")
        return problems

    def short(self) -> str:
        fields = " ".join(f"{key}={value!r}" for key, value in self.fields.items())
        return f"{fields}  <- {self.label}"


def expected_rows(report: dict, session: str | None) -> list[ExpectedRow]:
    """The rows one client's session must have produced, from what it sent and saw."""
    rows = []
    for step in report["steps"]:
        method = step["method"]
        if method is None:
            continue
        request_id = step.get("request_id")
        fields: dict[str, object] = {"method": method}
        if request_id is not None:
            fields["request_id"] = str(request_id)
        seen = step["outcome"]
        if method in HANDLER_KIND:
            kind = HANDLER_KIND[method]
            fields["kind"] = kind
            params = step["params"]
            fields[kind] = params["uri"] if kind == "resource" else params["name"]
            if seen == "result":
                fields.update(outcome="ok", error_type=None)
            elif seen == "is_error":
                fields.update(outcome="error", error_type="tool_error")
            elif seen == "error":
                fields.update(outcome="error", error_type=str(step["error_code"]))
            elif seen == "timeout" and params.get("name") == "crash":
                fields.update(outcome="panic", error_type="panic")
            else:
                raise AssertionError(f"no expectation for a {seen!r} step: {step}")
        else:
            fields["kind"] = "request"
            if seen == "result":
                fields.update(outcome="ok", error_type=None)
            else:
                fields.update(outcome="error", error_type=str(step.get("error_code")))
        rows.append(ExpectedRow(f"{step['step']} ({seen})", fields, session))
    for message in report["sent"]:
        if message["type"] == "notification":
            rows.append(
                ExpectedRow(
                    f"sent {message['method']}",
                    {"kind": "notification", "method": message["method"]},
                    session,
                )
            )
    for event in ("start", "end"):
        rows.append(ExpectedRow(f"session {event}", {"kind": "session", "event": event}, session))
    return rows


# --------------------------------------------------------------------------------------------
# Checking rows


def describe_row(row: Row) -> str:
    record = row.record
    kind = record.get("kind", "")
    name = record.get(kind, "") if kind in ("tool", "prompt", "resource") else record.get("event", "")
    parts = [
        f"{kind}:{record.get('method', '-')}:{name or '-'}",
        f"outcome={record.get('outcome')}",
        f"error_type={record.get('error_type')}",
        f"level={row.level}",
        f"session={row.session}",
        f"client={record.get('client_name')}/{record.get('client_version')}",
        f"transport={record.get('transport')}",
        f"protocol={record.get('protocol_version')}",
        f"request_id={record.get('request_id')}",
    ]
    return " ".join(parts)


def rows_listing(rows: list[Row]) -> str:
    return "\n".join(f"  {describe_row(row)}" for row in rows) or "  (none)"


class Problems:
    """Mismatches collected across every check, reported together. A check that fails on many
    rows (`on_row`) is reported once, with the values seen and a few of the rows."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.by_row: dict[tuple[str, str], list[tuple[object, Row]]] = {}

    def add(self, text: str) -> None:
        self.items.append(text)

    def check(self, condition: bool, text: str) -> None:
        if not condition:
            self.add(text)

    def on_row(self, condition: bool, who: str, what: str, got: object, row: Row) -> None:
        """`what` (the expectation) does not hold on `row`, where the value is `got`."""
        if not condition:
            self.by_row.setdefault((who, what), []).append((got, row))

    def all(self) -> list[str]:
        items = list(self.items)
        for (who, what), seen in self.by_row.items():
            values = Counter(repr(got) for got, _ in seen)
            summary = ", ".join(f"{value} x{count}" for value, count in values.most_common())
            examples = "".join(f"\n      e.g. {describe_row(row)}" for _, row in seen[:2])
            items.append(f"{who}: expected {what}; {len(seen)} rows differ (got {summary}){examples}")
        return items

    def raise_if_any(self, rows: list[Row], receiver: Receiver) -> None:
        items = self.all()
        if not items:
            return
        stderr = receiver.describe().split("receiver stderr:\n", 1)[-1]
        pytest.fail(
            f"{len(items)} mismatches with the analytics contract:\n"
            + "\n".join(f"- {item}" for item in items)
            + f"\n\n{len(rows)} rows received:\n{rows_listing(rows)}"
            + f"\nreceiver stderr:\n{stderr}",
            pytrace=False,
        )


def row_key(fields: dict) -> tuple[str, str]:
    """(kind, method), or (session, event) for session rows: what rows are counted by."""
    kind = str(fields.get("kind") or "")
    return kind, str(fields.get("event" if kind == "session" else "method") or "-")


def same_call(exp: ExpectedRow, row: Row) -> bool:
    """`row` looks like `exp`'s call (to show beside a missing row): same handler, or same method."""
    kind = exp.fields.get("kind")
    if row.record.get("kind") != kind:
        return False
    if kind in HANDLER_KIND.values():
        return row.record.get(kind) == exp.fields.get(kind)
    if kind == "session":
        return row.record.get("event") == exp.fields.get("event")
    return row.record.get("method") == exp.fields.get("method")


def check_one_row_per_call(
    problems: Problems, who: str, expected: list[ExpectedRow], rows: list[Row]
) -> None:
    """Each expected row matched by a distinct row, nothing left over; the counts per
    (kind, method) first, which say at a glance what is missing."""
    want = Counter(row_key(e.fields) for e in expected)
    got = Counter(row_key(r.record) for r in rows)
    for key in sorted(set(want) | set(got), key=str):
        problems.check(
            want[key] == got[key],
            f"{who}: {want[key]} rows of kind/{'event' if key[0] == 'session' else 'method'} "
            f"{key[0]}/{key[1]} expected (one per call), {got[key]} received",
        )
    missing, extra = match_events(expected, rows)
    for exp in missing:
        near = [row for row in rows if same_call(exp, row)]
        detail = "".join(
            f"\n      closest: {describe_row(r)}: {'; '.join(exp.mismatches(r))}" for r in near[:3]
        )
        problems.add(f"{who}: MISSING {exp.short()}{detail}")
    for row in extra:
        problems.add(f"{who}: UNEXPECTED {describe_row(row)}")


def check_row_fields(
    problems: Problems, who: str, rows: list[Row], report: dict, version: str, transport: str
) -> None:
    """What every row of one client's session must carry."""
    client = (report["client_info"]["name"], report["client_info"]["version"])
    protocol = report["protocol_version"]
    for row in rows:
        record = row.record
        kind = record.get("kind")
        unknown = sorted(set(record) - CONTRACT_KEYS)
        problems.on_row(not unknown, who, f"only the contract's keys {sorted(CONTRACT_KEYS)}", unknown, row)
        empty = sorted(key for key, value in record.items() if value == "")
        problems.on_row(not empty, who, "no key sent empty (missing = unknown)", empty, row)
        problems.on_row(record.get("appName") == APP_NAME, who, f"appName {APP_NAME!r}", record.get("appName"), row)
        problems.on_row(record.get("version") == version, who, f"version {version!r}", record.get("version"), row)
        outcome = record.get("outcome")
        problems.on_row(
            outcome is None or outcome in LEVEL_OF_OUTCOME, who, "a known outcome", outcome, row
        )
        problems.on_row(
            row.level == LEVEL_OF_OUTCOME.get(outcome, "info"),
            who,
            "level error for outcome error/panic, info otherwise",
            (outcome, row.level),
            row,
        )
        got_client = (record.get("client_name"), record.get("client_version"))
        problems.on_row(record.get("client_name") != "rmcp", who, "never client_name 'rmcp'", got_client, row)
        # A session may start before the client introduced itself: there the client may be absent.
        if kind != "session" or got_client != (None, None):
            problems.on_row(got_client == client, who, f"client_name/client_version {client}", got_client, row)
        if kind != "session" or record.get("protocol_version") is not None:
            problems.on_row(
                record.get("protocol_version") == protocol,
                who,
                f"protocol_version {protocol!r} (negotiated by the client)",
                record.get("protocol_version"),
                row,
            )
        problems.on_row(
            record.get("transport") == transport, who, f"transport {transport!r}", record.get("transport"), row
        )
        if kind == "session" and record.get("event") == "end":
            duration = record.get("duration_ms")
            problems.on_row(
                isinstance(duration, (int, float)) and duration >= 0,
                who,
                "duration_ms >= 0 on session end",
                duration,
                row,
            )
        if outcome in ("error", "panic"):
            problems.on_row(
                bool(record.get("error_type")), who, "error_type on error/panic rows", record.get("error_type"), row
            )


def all_matched(expected: list[ExpectedRow]):
    def every_expected_row_arrived(rows: list[Row]) -> bool:
        missing, _ = match_events(expected, rows)
        return not missing

    return every_expected_row_arrived


def await_rows(receiver: Receiver, expected: list[ExpectedRow]) -> list[Row]:
    """Waits until every expected row arrived, then until nothing more comes. When they do not
    all arrive in time, goes on with what came: the checks then say precisely what is missing."""
    try:
        receiver.wait_for(all_matched(expected), timeout=ROWS_TIMEOUT_S)
    except AssertionError:
        pass
    rows = receiver.settle()
    assert not receiver.malformed, receiver.describe()
    assert not receiver.rejections, receiver.describe()
    return rows


# --------------------------------------------------------------------------------------------
# Tests


def test_typescript_sdk_stdio(
    receiver: Receiver, stdio_server_bin: Path, version: str, tmp_path: Path, clients: list[ClientRun]
) -> None:
    workdir = tmp_path / "client"
    workdir.mkdir()  # no .env there: the server is configured by the variables below only
    run = ClientRun(
        "ts-stdio",
        "3.1.4",
        ["stdio", str(stdio_server_bin)],
        client_env({"TB_API_URL": receiver.url, "TB_WRITE_TOKEN": TOKEN}),
        workdir,
    )
    clients.append(run)
    report = run.finish()
    check_client_saw(report)
    exit_ = report["server_exit"]
    assert exit_ == {"code": 0, "signal": None, "killed_by_client": False}, (
        f"rmcp_stdio did not exit by itself with status 0 when its stdin closed: {exit_}\n"
        f"client and server stderr:\n{run.stderr}"
    )

    expected = expected_rows(report, session=None)
    rows = await_rows(receiver, expected)

    problems = Problems()
    sessions = {row.session for row in rows}
    problems.check(len(sessions) == 1, f"one stdio process is one session, got sessions {sorted(sessions)}")
    problems.check(all(sessions), "a row with an empty session")
    check_one_row_per_call(problems, run.name, expected, rows)
    check_row_fields(problems, run.name, rows, report, version, transport="pipe")
    problems.raise_if_any(rows, receiver)
    print(f"\nts stdio: {len(expected)} rows as the contract says (protocol {report['protocol_version']})")


@pytest.fixture
def http_server(http_server_bin: Path, receiver: Receiver, tmp_path: Path) -> Iterator[HttpServer]:
    workdir = tmp_path / "server"
    workdir.mkdir()
    server = HttpServer(http_server_bin, receiver.url, workdir)
    try:
        yield server
    finally:
        server.kill()


def test_typescript_sdk_http_two_clients(
    receiver: Receiver, http_server: HttpServer, version: str, tmp_path: Path, clients: list[ClientRun]
) -> None:
    workdir = tmp_path / "client"
    workdir.mkdir()
    env = client_env({})
    # Both at once: their sessions overlap (each run lasts the crash step's timeout at least).
    for name, client_version in (("ts-alpha", "1.0.0"), ("ts-beta", "2.0.0")):
        clients.append(ClientRun(name, client_version, ["http", http_server.url], env, workdir))
    reports = [run.finish() for run in clients]
    for report in reports:
        check_client_saw(report)

    alpha, beta = reports
    assert (
        alpha["connected_at_ms"] < beta["closed_at_ms"] and beta["connected_at_ms"] < alpha["closed_at_ms"]
    ), f"the two sessions did not overlap: {[(r['connected_at_ms'], r['closed_at_ms']) for r in reports]}"

    ids = [report["session_id"] for report in reports]
    assert all(ids) and ids[0] != ids[1], f"the two clients must get two session ids, got {ids}"
    for report, sid in zip(reports, ids):
        exchanges = report["http"]["exchanges"]
        sent = {e["sent_session"] for e in exchanges if e["sent_session"]}
        given = {e["given_session"] for e in exchanges if e.get("given_session")}
        who = report["client_info"]["name"]
        assert sent == {sid} and given <= {sid}, f"{who}: sent {sent}, was given {given}, kept {sid}"
        deletes = [e for e in exchanges if e["method"] == "DELETE"]
        assert len(deletes) == 1 and deletes[0].get("status") in (200, 202, 204), (
            f"{who}: the session was not terminated by one DELETE: {deletes}"
        )

    # SIGTERM: the server closes its sessions and delivers what is queued before exiting.
    status = http_server.terminate(5.0)
    assert status == 0, f"rmcp_http exited with {status} after SIGTERM\n{http_server.stderr}"

    expected_by_client = {sid: expected_rows(report, session=sid) for report, sid in zip(reports, ids)}
    rows = await_rows(receiver, [e for exp in expected_by_client.values() for e in exp])

    problems = Problems()
    strays = [row for row in rows if row.session not in ids]
    for row in strays:
        problems.add(f"a row whose session is neither client's {ids}: {describe_row(row)}")
    for report, sid in zip(reports, ids):
        who = report["client_info"]["name"]
        mine = [row for row in rows if row.session == sid]
        check_one_row_per_call(problems, who, expected_by_client[sid], mine)
        check_row_fields(problems, who, mine, report, version, transport="tcp")
    # The two clients never share a session: no row of one client in the other's session.
    for report, sid in zip(reports, ids):
        name = report["client_info"]["name"]
        wrong = [row for row in rows if row.record.get("client_name") == name and row.session != sid]
        for row in wrong:
            problems.add(f"{name}'s row outside its session {sid}: {describe_row(row)}")
    problems.raise_if_any(rows, receiver)
    print(f"\nts http: 2 sessions {ids}, {sum(map(len, expected_by_client.values()))} rows as the contract says")
