"""The two batches of real rows (`dashboard_rows.produce_batches`) that the dashboard tests load:
what those tests take for granted about them, checked here so that a change to the demo server,
the examples or the crate that breaks it fails loudly, in one place, rather than as a panel
count that is off by one.

- "before": `lookup` is listed, never called; nothing panics; stdio tool calls state an intent
  and carry a conversation;
- "after": `lookup` is called (ok and failing), a call of an unknown tool is rejected (-32602),
  `crash` panics, once; the stateless server's rows have no session;
- both: sessions start and end, over a pipe and over TCP, every row says who sent it, in which
  protocol, from which app and version; `dash-stdio` comes in two versions, one per batch; the
  second batch starts after the first ended.
"""

from __future__ import annotations

import json

import pytest

# `dashboard_batches` (conftest.py) runs them once per test session.
from dashboard_rows import MODEL_AFTER, MODEL_BEFORE, STDIO_AFTER, STDIO_BEFORE, Batches
from e2e_support import Row, check_row_invariants, parse_row, workspace_version

ROW_COLUMNS = {"timestamp", "session", "level", "record"}


def rows_of(batch: list[dict]) -> list[Row]:
    """The batch's rows, each checked for the Events API's shape and its record parsed."""
    return [parse_row(json.dumps(row)) for row in batch]


@pytest.fixture(scope="module")
def before(dashboard_batches: Batches) -> list[Row]:
    return rows_of(dashboard_batches.first)


@pytest.fixture(scope="module")
def after(dashboard_batches: Batches) -> list[Row]:
    return rows_of(dashboard_batches.second)


def shown(rows: list[Row]) -> str:
    return "\n".join(f"  {row.short()}" for row in rows)


def tool_rows(rows: list[Row], name: str) -> list[Row]:
    return [row for row in rows if row.kind == "tool" and row.name == name]


def test_rows_are_the_events_apis_and_keep_the_rows_contract(dashboard_batches: Batches) -> None:
    """Each row is a wire row (its record the JSON text sent) that satisfies every rule of the
    wrapper's rows: `appName` and `version` included, timestamps within the run."""
    window = (dashboard_batches.started, dashboard_batches.finished)
    for batch in (dashboard_batches.first, dashboard_batches.second):
        assert batch and all(set(row) == ROW_COLUMNS and isinstance(row["record"], str) for row in batch), batch
        rows = rows_of(batch)
        assert check_row_invariants(rows, workspace_version(), window) == len(rows)
        assert all(row.record["appName"] and row.record["version"] for row in rows), shown(rows)


def test_lookup_is_listed_before_and_called_only_after(before: list[Row], after: list[Row]) -> None:
    listings = [row for row in before if row.method == "tools/list" and row.listed]
    assert listings and all("lookup" in row.listed for row in listings), shown(before)
    assert not tool_rows(before, "lookup"), shown(tool_rows(before, "lookup"))
    outcomes = sorted((row.outcome, row.error_type) for row in tool_rows(after, "lookup"))
    # stdio: rust (ok), cobol (the tool's -32602); stateless HTTP: python (ok).
    assert outcomes == [("error", "-32602"), ("ok", ""), ("ok", "")], shown(tool_rows(after, "lookup"))


def test_the_first_panic_is_in_the_second_batch(before: list[Row], after: list[Row]) -> None:
    assert not [row for row in before if row.outcome == "panic"], shown(before)
    panics = [row for row in after if row.outcome == "panic"]
    assert len(panics) == 1 and panics[0].kind == "tool" and panics[0].name == "crash", shown(panics)
    assert panics[0].level == "error" and panics[0].error_type == "panic", panics[0].raw


def test_a_call_of_an_unknown_tool_is_rejected_in_the_second_batch(after: list[Row]) -> None:
    rejected = tool_rows(after, "no_such_tool")
    assert len(rejected) == 1 and rejected[0].outcome == "error" and rejected[0].error_type == "-32602", shown(rejected)


def sessions(rows: list[Row]) -> dict[str, list[str]]:
    """The session rows' events, by session."""
    events: dict[str, list[str]] = {}
    for row in rows:
        if row.kind == "session":
            events.setdefault(row.session, []).append(row.event)
    return events


def test_sessions_start_and_end_in_both_batches(before: list[Row], after: list[Row]) -> None:
    """Before: the stdio session and the stateful HTTP one; after: the stdio session, and the
    stateless requests, in none. Every row of a session is framed by its start and end."""
    for rows, transports in ((before, ["pipe", "tcp"]), (after, ["pipe"])):
        events = sessions(rows)
        assert all(sorted(pair) == ["end", "start"] for pair in events.values()), events
        assert sorted(
            next(row.transport for row in rows if row.session == sid and row.kind == "session") for sid in events
        ) == transports, shown(rows)
        assert "" not in events, shown(rows)
        assert {row.session for row in rows} - {""} == set(events), shown(rows)


def test_stateless_rows_have_no_session(before: list[Row], after: list[Row]) -> None:
    assert all(row.session for row in before), shown(before)
    stateless = [row for row in after if row.transport == "tcp"]
    assert stateless and all(row.session == "" for row in stateless), shown(stateless)
    assert sorted(row.name for row in stateless if row.kind == "tool") == ["add", "lookup"], shown(stateless)


def test_dash_stdio_comes_in_a_new_version_after(before: list[Row], after: list[Row]) -> None:
    def versions(rows: list[Row]) -> set[str]:
        return {row.client[1] for row in rows if row.client[0] == STDIO_BEFORE[0]}

    assert versions(before) == {STDIO_BEFORE[1]} and versions(after) == {STDIO_AFTER[1]}, (versions(before), versions(after))


def test_every_row_says_its_protocol_and_transport(before: list[Row], after: list[Row]) -> None:
    for rows in (before, after):
        assert all(row.protocol_version for row in rows), shown(rows)
        assert {row.transport for row in rows} == {"pipe", "tcp"}, shown(rows)


def test_stdio_tool_calls_before_carry_intent_and_conversation(before: list[Row]) -> None:
    calls = [row for row in before if row.kind == "tool" and row.transport == "pipe"]
    assert len(calls) == 5, shown(calls)
    assert all(row.record.get("intent") for row in calls), shown(calls)
    conversations = {row.record.get("conversation") for row in calls}
    assert len(conversations) == 1 and None not in conversations, shown(calls)


def test_the_second_batch_starts_after_the_first(before: list[Row], after: list[Row]) -> None:
    last, first = max(before, key=Row.started_at), min(after, key=Row.started_at)
    assert last.started_at() < first.started_at(), f"{last.short()}\n{first.short()}"


def test_models_are_named_in_both_batches_and_a_new_one_after(before: list[Row], after: list[Row]) -> None:
    """Calls whose `_meta` named the model carry it: one model in both batches, one only after."""
    models_before = {row.record.get("model") for row in before} - {None}
    models_after = {row.record.get("model") for row in after} - {None}
    assert models_before == {MODEL_BEFORE}, models_before
    assert models_after == {MODEL_BEFORE, MODEL_AFTER}, models_after
