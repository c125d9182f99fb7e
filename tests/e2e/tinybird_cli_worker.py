"""The half of `tinybird_cli.py` that runs inside .venv-tinybird, where Tinybird's Classic CLI
(`tinybird-cli`) is installed; the suite's own venv cannot import it (conflicting pins).

Reads one JSON request on stdin, writes one JSON answer on stdout:

- `{"op": "parse", "paths": [...]}`: each datafile through the CLI's own parser
  (`parse_datasource`, `parse_pipe`: what `tb check` and `tb push` run), summarized;
- `{"op": "render", "sql": "...", "variables": {...}, "test_mode": false}`: templated SQL
  through the CLI's `render_sql_template`, as Tinybird renders an endpoint's node.

The answer is `{"ok": true, "result": ...}`, or `{"ok": false, "error": "..."}` when Tinybird
refuses the input (a datafile that does not parse, a template that does not render). Anything
else (a crash, a missing module) is a non-zero exit with a traceback on stderr.

Only the standard library and `tinybird` here: the suite runs this with `python -I`.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

# The parser's modules (`tinybird.datafile_common`, `tinybird.sql_toolset`) are imported where
# they are used: they take most of a second to import, which every rendering of an endpoint (one
# process each, tens per test module) would otherwise pay for nothing.
from tinybird.sql_template import render_sql_template

# Node keys every summary names itself; any other key the parser sets goes under `params`.
PIPE_NODE_KEYS = {"name", "sql", "type", "datasource", "description"}
DATASOURCE_NODE_KEYS = {"name", "description", "schema", "columns", "engine"}
# The CLI colours its error messages whatever the output; the caller wants the text.
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


class Refused(Exception):
    """Tinybird refused the input: reported to the caller as `{"ok": false}`."""


def strip_template_marker(sql: str) -> str:
    """A node whose SQL starts with `%` is a template; the `%` is a marker, not SQL (Tinybird
    drops it before rendering, `parse_pipe` too)."""
    stripped = sql.lstrip()
    return stripped[1:] if stripped.startswith("%") else sql


def used_tables(sql: str) -> tuple[list[str], list[str]]:
    """The tables (`name`, or `database.name`) and table functions `sql` reads, by ClickHouse's
    parser (`sql_get_used_tables`; CTE names are not tables). A template is rendered first with
    placeholder values, as `tb check` does."""
    from tinybird.sql_toolset import sql_get_used_tables

    if sql.lstrip().startswith("%"):
        sql = render_sql_template(strip_template_marker(sql), test_mode=True)[0]
    tables, functions = [], []
    for database, table, function in sql_get_used_tables(sql, raising=True):
        if function:
            functions.append(function)
        elif table:
            tables.append(f"{database}.{table}" if database else table)
    return sorted(set(tables)), sorted(set(functions))


def summarize_pipe(path: str) -> dict[str, Any]:
    from tinybird.datafile_common import parse_pipe

    doc = parse_pipe(path)
    nodes = []
    for node in doc.nodes:
        tables, functions = used_tables(node["sql"])
        nodes.append(
            {
                "name": node["name"],
                "sql": node["sql"],
                "templated": node["sql"].lstrip().startswith("%"),
                "type": node.get("type"),
                "datasource": node.get("datasource"),
                "description": node.get("description"),
                "params": {key: value for key, value in node.items() if key not in PIPE_NODE_KEYS},
                "tables": tables,
                "table_functions": functions,
            }
        )
    return {
        "kind": "pipe",
        "name": Path(path).stem,
        "description": doc.description,
        "tokens": tokens(doc),
        "nodes": nodes,
        "warnings": [str(warning) for warning in doc.warnings],
    }


def summarize_datasource(path: str) -> dict[str, Any]:
    from tinybird.datafile_common import parse_datasource

    doc = parse_datasource(path)
    node = doc.nodes[0] if doc.nodes else {}
    engine = node.get("engine") or {}
    return {
        "kind": "datasource",
        "name": Path(path).stem,
        "description": doc.description,
        "tokens": tokens(doc),
        "columns": [column_summary(column) for column in node.get("columns", [])],
        "schema": node.get("schema"),
        # `ENGINE_PARTITION_KEY` is `partition_key`, `ENGINE_SORTING_KEY` `sorting_key`, ...
        "engine": {"type": engine.get("type"), **dict(engine.get("args", []))},
        "params": {key: value for key, value in node.items() if key not in DATASOURCE_NODE_KEYS},
        "warnings": [str(warning) for warning in doc.warnings],
    }


def column_summary(column: dict[str, Any]) -> dict[str, Any]:
    """A column, its `type` the full ClickHouse type: Tinybird's parser splits `Nullable(T)` into
    type `T` and `nullable`; put back, it compares with the file and with ClickHouse."""
    column_type = column["type"]
    if column.get("nullable") and "Nullable(" not in column_type:
        column_type = f"Nullable({column_type})"
    return {
        "name": column["name"],
        "type": column_type,
        "nullable": bool(column.get("nullable")),
        "jsonpath": column.get("jsonpath"),
        "default_value": column.get("default_value"),
        "codec": column.get("codec"),
    }


def tokens(doc: Any) -> list[dict[str, str]]:
    return [{"name": token["token_name"], "permissions": token["permissions"]} for token in doc.tokens]


def parse(paths: list[str]) -> dict[str, Any]:
    summaries = {}
    for path in paths:
        try:
            if path.endswith(".pipe"):
                summaries[path] = summarize_pipe(path)
            elif path.endswith(".datasource"):
                summaries[path] = summarize_datasource(path)
            else:
                raise Refused("not a .pipe nor a .datasource")
        except Exception as error:  # the parser raises click, template and ClickHouse errors alike
            raise Refused(f"{path}: {describe(error)}") from error
    return summaries


def render(sql: str, variables: dict[str, Any], test_mode: bool) -> str:
    try:
        return render_sql_template(strip_template_marker(sql), variables, test_mode=test_mode)[0]
    except Exception as error:  # SQLTemplateException, UnClosedIfError, SyntaxError, ...
        raise Refused(describe(error)) from error


def describe(error: BaseException) -> str:
    message = ANSI_ESCAPE.sub("", getattr(error, "message", None) or str(error))
    return f"{type(error).__name__}: {message.strip()}"


def main() -> int:
    request = json.load(sys.stdin)
    # The CLI's code prints (click.echo) now and then: keep stdout for the answer alone.
    answer_to = sys.stdout
    sys.stdout = sys.stderr
    try:
        if request["op"] == "parse":
            result: Any = parse(request["paths"])
        elif request["op"] == "render":
            result = render(request["sql"], request.get("variables") or {}, bool(request.get("test_mode")))
        else:
            raise ValueError(f"unknown op {request['op']!r}")
        answer = {"ok": True, "result": result}
    except Refused as refused:
        answer = {"ok": False, "error": str(refused)}
    json.dump(answer, answer_to, default=str)
    answer_to.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
