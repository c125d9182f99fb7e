"""The rmcp example servers driven by the official MCP TypeScript SDK (`ts/client.mjs`, pinned in
`ts/package-lock.json`) over stdio and streamable HTTP; the rows at the receiver must follow the
analytics contract of `mcp_analytics::rmcp::instrument!`:

- one row per handler call (`kind` tool / prompt / resource, `method` tools/call / prompts/get /
  resources/read, the handler's name in `tool` / `prompt` / `resource`), however many attributes
  the server also has (`#[mcp_tool]` on call_tool, `#[mcp_prompt]`, `#[mcp_resource]` join the
  wrapper's row: `funcName` is theirs, `handler_duration_ms` their body's time, at most
  `duration_ms`); `outcome` ok / error / panic; `error_type` `tool_error` for an `isError`
  result, the JSON-RPC code (a string) for a JSON-RPC error, `panic` for a panic;
- one `kind: request` row per other request (`method` initialize, tools/list, ...; a listing's
  row has `listed` the first time the process serves that listing), one `kind: notification`
  row per client notification, `kind: session` rows `event` start / end (no outcome, no
  request id; the end has the session's `duration_ms`);
- on every row the client's `client_name` / `client_version`, the negotiated `protocol_version`,
  `transport` (`pipe` on stdio, `tcp` on HTTP), the request's JSON-RPC id in `request_id`
  (requests only), and the `session` column: the process's one id on stdio, the client's
  `mcp-session-id` on HTTP;
- level `error` for outcome error / panic, `info` otherwise.

The client's own report (what it sent, what each step got) is checked first: when that fails the
harness or the server misbehaved, not analytics. The row checks then collect every mismatch and
fail once, listing them with the rows received.

Needs Node.js 20+ and `npm ci` in tests/e2e/ts (tests/run.sh does it).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from e2e_support import (
    HttpServer,
    ALWAYS_KEYS,
    APP_NAME,
    KIND_KEYS,
    LEVEL_OF_OUTCOME,
    LISTINGS,
    ClientRun,
    ExpectedRow,
    Receiver,
    Row,
    answer,
    await_rows,
    client_env,
    expected_rows,
    mismatch_report,
    server_env,
)

ROWS_TIMEOUT_S = 5.0


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
    # rmcp 3.11 answers an unknown tool with a JSON-RPC error -32602, arguments that do not
    # deserialize with an isError result.
    want("no_such_tool()", {"error"}, code=-32602)
    assert "deserializ" in (want("add(x)", {"is_error"}).get("text") or "").lower(), steps["add(x)"]
    want("greet(Ada)", {"result"})
    want("read mem://readme", {"result"})
    want("crash()", {"timeout"})
    want("ping after crash()", {"result"})
    assert steps["close"]["outcome"] == "closed", f"{who}: close gave {steps['close']}"
    # Every request the client sent had its step (nothing sent behind the script's back).
    requests = Counter(m["method"] for m in report["sent"] if m["type"] == "request")
    scripted = Counter(s["method"] for s in report["steps"] if s["method"])
    assert requests == scripted, f"{who}: requests sent {dict(requests)} != steps {dict(scripted)}"


# --------------------------------------------------------------------------------------------
# Expected rows


def listed_by(report: dict) -> dict[str, list[str]]:
    """What each listing gave the client, in order."""
    listed = {}
    for step in report["steps"]:
        if step["method"] in LISTINGS and step["outcome"] == "result":
            result = answer(report, step["request_id"])["result"]
            items = result.get("tools") or result.get("prompts") or result.get("resources") or []
            listed[step["method"]] = [item.get("uri") or item["name"] for item in items]
    return listed


# --------------------------------------------------------------------------------------------
# Checking rows


def describe_row(row: Row) -> str:
    return row.short()


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


def check_one_row_per_call(
    problems: Problems, who: str, expected: list[ExpectedRow], rows: list[Row]
) -> None:
    """Each expected row matched by a distinct row, nothing left over; the counts per
    (kind, method) first, which say at a glance what is missing."""
    for line in mismatch_report(expected, rows, who):
        problems.add(line)


def check_listings(problems: Problems, rows: list[Row], listed: dict[str, list[str]]) -> None:
    """A fresh server process names what a listing listed on the first such listing it serves,
    and not again while it lists the same: exactly one row per listing method has `listed`, and
    it is what the clients were given."""
    for method, names in listed.items():
        with_names = [row for row in rows if row.method == method and row.listed is not None]
        problems.check(
            len(with_names) == 1 and with_names[0].listed == names,
            f"{method}: one row listing {names} expected (the process's first), got "
            + ("; ".join(describe_row(row) for row in with_names) or "none"),
        )


def check_row_fields(
    problems: Problems, who: str, rows: list[Row], report: dict, version: str, transport: str
) -> None:
    """What every row of one client's session must carry, by its kind."""
    client = (report["client_info"]["name"], report["client_info"]["version"])
    protocol = report["protocol_version"]
    for row in rows:
        record = row.record
        kind = row.kind
        if kind not in KIND_KEYS:
            problems.on_row(False, who, f"a kind among {sorted(KIND_KEYS)}", kind, row)
            continue
        required, allowed = KIND_KEYS[kind]
        missing = sorted((ALWAYS_KEYS | required) - set(record))
        problems.on_row(not missing, who, f"the keys a {kind} row always has", missing, row)
        unknown = sorted(set(record) - ALWAYS_KEYS - required - allowed)
        problems.on_row(not unknown, who, f"only the keys a {kind} row may have", unknown, row)
        empty = sorted(key for key, value in record.items() if value in ("", None, []))
        problems.on_row(not empty, who, "no key sent empty (missing = unknown)", empty, row)
        problems.on_row(record.get("appName") == APP_NAME, who, f"appName {APP_NAME!r}", record.get("appName"), row)
        problems.on_row(record.get("version") == version, who, f"version {version!r}", record.get("version"), row)
        outcome = record.get("outcome")
        if kind == "session":
            problems.on_row(outcome is None, who, "no outcome on session rows", outcome, row)
            problems.on_row(row.event in ("start", "end"), who, "session event start or end", row.event, row)
            problems.on_row(
                ("duration_ms" in record) == (row.event == "end"),
                who,
                "duration_ms on a session's end, not on its start",
                (row.event, record.get("duration_ms")),
                row,
            )
            message = f"session {row.event}"
        else:
            problems.on_row(outcome in LEVEL_OF_OUTCOME, who, "a known outcome", outcome, row)
            message = f"{kind} {row.name}: {outcome}" + (f": {row.error}" if row.error else "")
        problems.on_row(record.get("message") == message, who, "message KIND NAME: OUTCOME[: ERROR]", record.get("message"), row)
        problems.on_row(
            row.level == LEVEL_OF_OUTCOME.get(outcome, "info"),
            who,
            "level error for outcome error/panic, info otherwise",
            (outcome, row.level),
            row,
        )
        problems.on_row(row.client == client, who, f"client_name/client_version {client}", row.client, row)
        problems.on_row(
            row.protocol_version == protocol,
            who,
            f"protocol_version {protocol!r} (negotiated by the client)",
            row.protocol_version,
            row,
        )
        problems.on_row(row.transport == transport, who, f"transport {transport!r}", row.transport, row)
        if "handler_duration_ms" in record:
            problems.on_row(
                record["handler_duration_ms"] <= record.get("duration_ms", -1),
                who,
                "handler_duration_ms <= duration_ms",
                (record["handler_duration_ms"], record.get("duration_ms")),
                row,
            )
        if "listed" in record:
            problems.on_row(row.method in LISTINGS, who, "listed on listing rows only", row.method, row)
        if outcome in ("error", "panic"):
            problems.on_row(bool(row.error_type), who, "error_type on error/panic rows", row.error_type, row)
        else:
            problems.on_row(
                "error" not in record and "error_type" not in record,
                who,
                "no error or error_type unless the outcome is error or panic",
                (row.error, row.error_type),
                row,
            )


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
        # client.mjs passes its TB_* and MCP_ANALYTICS_* variables on to the server.
        client_env(server_env(receiver.url, workdir / "spool")),
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
    rows = await_rows(receiver, expected, timeout=ROWS_TIMEOUT_S)

    problems = Problems()
    sessions = {row.session for row in rows}
    problems.check(len(sessions) == 1, f"one stdio process is one session, got sessions {sorted(sessions)}")
    problems.check(all(sessions), "a row with an empty session")
    check_one_row_per_call(problems, run.name, expected, rows)
    check_row_fields(problems, run.name, rows, report, version, transport="pipe")
    check_listings(problems, rows, listed_by(report))
    problems.raise_if_any(rows, receiver)
    print(f"\nts stdio: {len(expected)} rows as the contract says (protocol {report['protocol_version']})")


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
    rows = await_rows(receiver, [e for exp in expected_by_client.values() for e in exp], timeout=ROWS_TIMEOUT_S)

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
    # One server process: of the two clients' listings, the first of each kind names what it listed.
    listed = [listed_by(report) for report in reports]
    assert listed[0] == listed[1] and listed[0], f"the two clients were listed different things: {listed}"
    check_listings(problems, rows, listed[0])
    problems.raise_if_any(rows, receiver)
    print(f"\nts http: 2 sessions {ids}, {sum(map(len, expected_by_client.values()))} rows as the contract says")
