"""A Tinybird data project (`.datasource` and `.pipe` files) run on chdb, ClickHouse embedded in
Python, for tests without a Tinybird account.

Tinybird runs on ClickHouse; this module does what a deployment and the Events API do, with the
few liberties a local engine needs:

- each `.datasource` becomes a table (`SCHEMA`, `ENGINE`, `ENGINE_PARTITION_KEY`,
  `ENGINE_SORTING_KEY`, `ENGINE_TTL`, `ENGINE_SETTINGS`);
- each materialized node (`TYPE MATERIALIZED`, `DATASOURCE target`) becomes a ClickHouse
  materialized view `TO target`: an insert trigger that transforms each inserted block, which is
  what a Tinybird materialization is. Its output columns must have the target's names and types,
  as Tinybird checks on deployment;
- the other nodes of a pipe become views named after the nodes, so that later nodes read earlier
  ones by name, as they do in Tinybird;
- appended NDJSON goes through the schema's `json:$.path` paths into the columns, one INSERT per
  batch (one Events API request), with timestamps parsed best-effort in UTC, as Tinybird does;
- an endpoint is read in ClickHouse's `Prometheus` output format, which is what Tinybird's
  `.prometheus` format is: the same columns (`name`, `value`, optional `help`, `type`, `labels`,
  `timestamp`), the same rules (sorted by name; `le`, `sum` and `count` labels of histograms);
- an endpoint whose nodes are templated (`%`) is rendered per request with its parameters by
  Tinybird's own template engine (`tinybird_cli.render_sql`), and its nodes run as the common
  table expressions of one query, as Tinybird runs them.

Not supported, and refused rather than ignored: templated nodes outside endpoints, copy and sink
pipes, includes, JSONPath beyond `$.a.b` and `$.a[:]`, and any instruction not listed above.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chdb import session as chdb_session

from tinybird_cli import render_sql

DATABASE = "workspace"

# Instructions understood per file kind; anything else is an error, so that a typo in a datafile
# fails the test instead of silently changing what runs.
DATASOURCE_INSTRUCTIONS = {
    "DESCRIPTION",
    "TOKEN",
    "TAGS",
    "SCHEMA",
    "ENGINE",
    "ENGINE_PARTITION_KEY",
    "ENGINE_SORTING_KEY",
    "ENGINE_TTL",
    "ENGINE_SETTINGS",
}
PIPE_INSTRUCTIONS = {"DESCRIPTION", "TOKEN", "TAGS", "NODE", "SQL", "TYPE", "DATASOURCE"}
NODE_TYPES = {"ENDPOINT", "MATERIALIZED"}

INSTRUCTION = re.compile(r"^(?P<keyword>[A-Z_]+)(?:\s+(?P<value>.*?))?\s*$")
COLUMN = re.compile(r"^`(?P<name>[^`]+)`\s+(?P<type>.+?)(?:\s+`json:(?P<path>[^`]+)`)?\s*,?\s*$")
# Storage wrappers a value passes through on insert: `LowCardinality(T)` and
# `SimpleAggregateFunction(f, T)` hold plain `T` values, which is what a query produces for them.
STORAGE_WRAPPER = re.compile(
    r"(?:LowCardinality\(|SimpleAggregateFunction\(\w+,\s*)((?:[^()]|\([^()]*\))*)\)"
)
TOKEN = re.compile(r'^"?(?P<name>[^"\s]+)"?\s+(?P<scope>READ|APPEND)$')
JSONPATH = re.compile(r"^\$((?:\.[A-Za-z_][A-Za-z0-9_]*)+)(\[:\])?$")


class DatafileError(ValueError):
    """A datafile this module cannot run as Tinybird would."""


def parse_instructions(text: str, path: Path) -> list[tuple[str, str]]:
    """Splits a datafile into `(KEYWORD, value)` pairs, in order.

    A value is the rest of the line, without surrounding double quotes, or, after `KEYWORD >`,
    the indented block below it, dedented. Blank lines and `#` comments between instructions are
    skipped; inside a block they are kept.
    """
    instructions: list[tuple[str, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.startswith("#"):
            continue
        match = INSTRUCTION.match(line)
        if line[0].isspace() or match is None:
            raise DatafileError(f"{path}:{i}: expected an instruction, found {line!r}")
        keyword, value = match["keyword"], match["value"] or ""
        if value == ">":
            block = []
            while i < len(lines) and (not lines[i].strip() or lines[i][0].isspace()):
                block.append(lines[i])
                i += 1
            value = textwrap.dedent("\n".join(block)).strip("\n")
        elif len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        instructions.append((keyword, value))
    return instructions


@dataclass(frozen=True)
class Column:
    """A column of a datasource's `SCHEMA`, with its JSONPath when it has one."""

    name: str
    type: str
    jsonpath: str | None

    @property
    def nullable(self) -> bool:
        return self.type.startswith("Nullable(")


@dataclass(frozen=True)
class Datasource:
    """A `.datasource` file."""

    name: str
    columns: tuple[Column, ...]
    engine: dict[str, str]
    tokens: tuple[tuple[str, str], ...] = ()

    @classmethod
    def load(cls, path: Path) -> Datasource:
        columns: list[Column] = []
        engine: dict[str, str] = {}
        tokens = []
        for keyword, value in parse_instructions(path.read_text(), path):
            if keyword not in DATASOURCE_INSTRUCTIONS:
                raise DatafileError(f"{path}: unsupported instruction {keyword}")
            if keyword == "TOKEN":
                tokens.append(parse_token(value, path))
            elif keyword == "SCHEMA":
                columns = [parse_column(line, path) for line in value.splitlines() if line.strip()]
            elif keyword.startswith("ENGINE"):
                engine[keyword] = value
        if not columns:
            raise DatafileError(f"{path}: no SCHEMA")
        return cls(path.stem, tuple(columns), engine, tuple(tokens))

    def create_table(self) -> str:
        """The `CREATE TABLE` statement Tinybird's datasource amounts to."""
        columns = ",\n    ".join(f"`{column.name}` {column.type}" for column in self.columns)
        clauses = [f"ENGINE = {self.engine.get('ENGINE', 'MergeTree')}()"]
        if "ENGINE_PARTITION_KEY" in self.engine:
            clauses.append(f"PARTITION BY {self.engine['ENGINE_PARTITION_KEY']}")
        clauses.append(f"ORDER BY ({self.engine.get('ENGINE_SORTING_KEY', 'tuple()')})")
        if "ENGINE_TTL" in self.engine:
            clauses.append(f"TTL {self.engine['ENGINE_TTL']}")
        if "ENGINE_SETTINGS" in self.engine:
            clauses.append(f"SETTINGS {self.engine['ENGINE_SETTINGS']}")
        return f"CREATE TABLE `{self.name}` (\n    {columns}\n)\n" + "\n".join(clauses)

    def row_from_json(self, event: dict) -> dict:
        """Maps one Events API object onto the columns through their JSONPaths.

        A missing value is NULL in a Nullable column and an error otherwise (Tinybird would
        quarantine the row; a test's data must not need that). A JSON object or array bound for a
        String column is kept as JSON text.
        """
        row = {}
        for column in self.columns:
            if column.jsonpath is None:
                raise DatafileError(f"{self.name}.{column.name} has no JSONPath to ingest from")
            value = resolve_jsonpath(event, column.jsonpath)
            if value is None and not column.nullable:
                raise ValueError(f"{self.name}: no value at {column.jsonpath} in {event}")
            if isinstance(value, (dict, list)) and "String" in column.type and "Array" not in column.type:
                value = json.dumps(value, separators=(",", ":"))
            row[column.name] = value
        return row


def parse_token(value: str, path: Path) -> tuple[str, str]:
    """`"name" READ` → `("name", "READ")`."""
    match = TOKEN.match(value)
    if match is None:
        raise DatafileError(f"{path}: cannot read the token {value!r}")
    return match["name"], match["scope"]


def parse_column(line: str, path: Path) -> Column:
    match = COLUMN.match(line.strip())
    if match is None:
        raise DatafileError(f"{path}: cannot read the column {line.strip()!r}")
    return Column(match["name"], match["type"], match["path"])


def resolve_jsonpath(event: dict, jsonpath: str):
    """The value at `$.a.b` (or every element at `$.a[:]`) in `event`, None when absent."""
    match = JSONPATH.match(jsonpath)
    if match is None:
        raise DatafileError(f"unsupported JSONPath {jsonpath}")
    value = event
    for key in match[1].split(".")[1:]:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    if match[2] and not isinstance(value, list):
        return None
    return value


@dataclass(frozen=True)
class Node:
    """A node of a pipe: its SQL, and what it publishes, if anything."""

    name: str
    sql: str
    type: str | None = None
    datasource: str | None = None

    @property
    def templated(self) -> bool:
        """Tinybird renders a node's SQL as a template when it starts with `%`."""
        return self.sql.lstrip().startswith("%")


@dataclass(frozen=True)
class Pipe:
    """A `.pipe` file."""

    name: str
    nodes: tuple[Node, ...]
    tokens: tuple[tuple[str, str], ...] = ()

    @classmethod
    def load(cls, path: Path) -> Pipe:
        nodes: list[dict] = []
        tokens = []
        for keyword, value in parse_instructions(path.read_text(), path):
            if keyword not in PIPE_INSTRUCTIONS:
                raise DatafileError(f"{path}: unsupported instruction {keyword}")
            if keyword == "TOKEN":
                tokens.append(parse_token(value, path))
            elif keyword == "NODE":
                nodes.append({"name": value})
            elif keyword in {"SQL", "TYPE", "DATASOURCE"}:
                if not nodes:
                    raise DatafileError(f"{path}: {keyword} before any NODE")
                nodes[-1][keyword.lower()] = value
        pipe = cls(path.stem, tuple(Node(**node) for node in nodes), tuple(tokens))
        pipe.check(path)
        return pipe

    def check(self, path: Path) -> None:
        if not self.nodes:
            raise DatafileError(f"{path}: no NODE")
        for index, node in enumerate(self.nodes):
            if not node.sql:
                raise DatafileError(f"{path}: node {node.name} has no SQL")
            if node.templated and not self.endpoint:
                raise DatafileError(f"{path}: node {node.name} is templated outside an endpoint; not supported here")
            if node.type is not None and node.type.upper() not in NODE_TYPES:
                raise DatafileError(f"{path}: node {node.name} has unsupported TYPE {node.type}")
            if node.type is not None and index != len(self.nodes) - 1:
                raise DatafileError(f"{path}: only the last node may publish (TYPE), not {node.name}")
        last = self.nodes[-1]
        if self.materialized and (last.datasource is None or len(self.nodes) != 1):
            # A ClickHouse materialized view triggers on the table in its FROM, not on a view of
            # an earlier node; a single node keeps the trigger where Tinybird puts it.
            raise DatafileError(f"{path}: a materialized pipe needs one node and a DATASOURCE")

    @property
    def materialized(self) -> bool:
        return (self.nodes[-1].type or "").upper() == "MATERIALIZED"

    @property
    def endpoint(self) -> bool:
        return (self.nodes[-1].type or "").upper() == "ENDPOINT"

    @property
    def templated(self) -> bool:
        return any(node.templated for node in self.nodes)


@dataclass(frozen=True)
class Project:
    """Every datasource and pipe under a Tinybird project folder."""

    datasources: dict[str, Datasource]
    pipes: dict[str, Pipe]

    @classmethod
    def load(cls, root: Path) -> Project:
        datasources = {path.stem: Datasource.load(path) for path in sorted(root.rglob("*.datasource"))}
        pipes = {path.stem: Pipe.load(path) for path in sorted(root.rglob("*.pipe"))}
        # Templated pipes' nodes become common table expressions of their own query, not views.
        views = [node.name for pipe in pipes.values() if not pipe.templated for node in pipe.nodes[:-1]]
        names = list(datasources) + views
        clashes = {name for name in names if names.count(name) > 1}
        if clashes:
            # Views of nodes share the database with the tables; Tinybird scopes node names per
            # pipe, this module cannot.
            raise DatafileError(f"names used twice across datasources and nodes: {sorted(clashes)}")
        return cls(datasources, pipes)


class Workspace:
    """A project deployed into a fresh chdb database under `path`."""

    def __init__(self, project: Project, path: Path) -> None:
        self.project = project
        self._session = chdb_session.Session(str(path))
        self._session.query(f"CREATE DATABASE {DATABASE} ENGINE = Atomic")
        self._session.query(f"USE {DATABASE}")
        # Tinybird workspaces run in UTC; `now()` and parsed timestamps must agree with it.
        self._session.query("SET session_timezone = 'UTC'")
        self._deploy()

    def _deploy(self) -> None:
        for datasource in self.project.datasources.values():
            self.query(datasource.create_table())
        for pipe in self.project.pipes.values():
            if pipe.materialized:
                node = pipe.nodes[0]
                self._check_materialization(pipe, node)
                self.query(f"CREATE MATERIALIZED VIEW `{pipe.name}` TO `{node.datasource}` AS\n{node.sql}")
            elif not pipe.templated:
                for node in pipe.nodes[:-1]:
                    self.query(f"CREATE VIEW `{node.name}` AS\n{node.sql}")

    def _check_materialization(self, pipe: Pipe, node: Node) -> None:
        """Fails unless the node's output has the target datasource's columns and types."""
        target = self.project.datasources.get(node.datasource or "")
        if target is None:
            raise DatafileError(f"{pipe.name}: no datasource {node.datasource}")
        produced = dict(self.describe(node.sql))
        expected = {column.name: column.type for column in target.columns}
        if produced.keys() != expected.keys():
            raise DatafileError(
                f"{pipe.name} produces columns {sorted(produced)}, {target.name} has {sorted(expected)}"
            )
        mismatched = {
            name: (produced[name], wanted)
            for name, wanted in expected.items()
            if value_type(produced[name]) != value_type(wanted)
        }
        if mismatched:
            raise DatafileError(f"{pipe.name} → {target.name}: types (produced, wanted) {mismatched}")

    def query(self, sql: str, fmt: str = "TSV") -> str:
        """Runs one statement; returns its output in `fmt`."""
        return self._session.query(sql, fmt).bytes().decode()

    def describe(self, sql: str) -> list[tuple[str, str]]:
        """The `(name, type)` of each column `sql` returns."""
        # On its own line, the parenthesis cannot end up inside a trailing `--` comment.
        out = self.query(f"DESCRIBE (\n{sql}\n)", "JSONEachRow")
        return [(row["name"], row["type"]) for row in map(json.loads, out.splitlines())]

    def append(self, datasource: str, events: Iterable[dict], batch_rows: int = 25) -> None:
        """Appends `events` like the Events API does, `batch_rows` per request: every request's
        block goes through the materializations on its own."""
        table = self.project.datasources[datasource]
        for batch in batched(events, batch_rows):
            rows = "\n".join(json.dumps(table.row_from_json(event)) for event in batch)
            self.query(
                f"INSERT INTO `{datasource}` SETTINGS date_time_input_format = 'best_effort' "
                f"FORMAT JSONEachRow\n{rows}"
            )

    def endpoint(self, pipe_name: str, fmt: str, params: Mapping[str, Any] | None = None) -> str:
        """Reads the published node of `pipe_name` in ClickHouse output format `fmt`; a templated
        pipe is rendered first with the request's `params`."""
        pipe = self.project.pipes[pipe_name]
        if not pipe.endpoint:
            raise DatafileError(f"{pipe_name} is not an endpoint")
        if not pipe.templated:
            if params:
                raise DatafileError(f"{pipe_name} takes no parameters, got {sorted(params)}")
            return self.query(pipe.nodes[-1].sql, fmt)
        rendered = [render_sql(node.sql, params or {}) for node in pipe.nodes]
        earlier = ",\n".join(f"`{node.name}` AS (\n{sql}\n)" for node, sql in zip(pipe.nodes[:-1], rendered[:-1]))
        return self.query(f"WITH {earlier}\n{rendered[-1]}" if len(rendered) > 1 else rendered[-1], fmt)

    def close(self) -> None:
        self._session.close()


def value_type(type_name: str) -> str:
    """The type of the values a column holds: `T` for `LowCardinality(T)` and
    `SimpleAggregateFunction(f, T)`, storage choices converted on insert."""
    return STORAGE_WRAPPER.sub(r"\1", type_name)


def batched(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
