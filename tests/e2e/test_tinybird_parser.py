"""The Tinybird project in `tinybird/`, read by Tinybird's own code: the Classic CLI's `tb
check` and its parser (`parse_datasource`, `parse_pipe`), from .venv-tinybird through
`tinybird_cli.py`.

test_tinybird.py runs the project on chdb with this suite's own reading of the datafiles; this
file checks that Tinybird reads them at all, and the same way: every file parses, every node's
SQL passes ClickHouse's parser (which takes lru-dict, see requirements-tinybird.txt), every
table a node reads and every materialization's target exists in the project. The broken copies
show that each check can fail. Files are discovered, never listed: the project changes.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from e2e_support import REPO_ROOT
from tinybird_cli import REQUIREMENTS, TinybirdError, parse_datafiles, python, render_sql, tb_check
from tinybird_project import Project

TINYBIRD_DIR = REPO_ROOT / "tinybird"
# The project has 12 datafiles as this is written; fewer than this means files went missing (a
# folder moved or deleted), not that they all passed.
MIN_DATAFILES = 10
# Instructions, unindented; a `KEYWORD >` block is the indented lines below it.
NODE_LINE = re.compile(r"^NODE\s+(?P<name>.+?)\s*$")
BLOCK_START = re.compile(r"^(?P<keyword>[A-Z_]+)\s*>\s*$")
DATASOURCE_LINE = re.compile(r"^DATASOURCE\s+(?P<name>\S+)\s*$", re.MULTILINE)
SCHEMA_COLUMN = re.compile(r"^(?P<head>\s*`(?P<name>[^`]+)`\s+)(?P<type>[A-Za-z_][A-Za-z0-9_]*)")
FROM_TABLE = re.compile(r"^(?P<head>\s*FROM\s+)(?P<table>[A-Za-z_][A-Za-z0-9_]*)\b")
PIN = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)==(?P<version>\S+)", re.MULTILINE)


def project_datafiles(root: Path = TINYBIRD_DIR) -> list[Path]:
    return sorted(root.rglob("*.datasource")) + sorted(root.rglob("*.pipe"))


@pytest.fixture(scope="module")
def datafiles() -> list[Path]:
    """Every datafile of the project; fails when too few are left to mean anything."""
    files = project_datafiles()
    assert len(files) >= MIN_DATAFILES, f"only {len(files)} datafiles under {TINYBIRD_DIR}: {files}"
    assert {path.suffix for path in files} == {".datasource", ".pipe"}, files
    return files


@pytest.fixture(scope="module")
def summaries(datafiles: list[Path]) -> dict[Path, dict[str, Any]]:
    """The project through Tinybird's parser, once for the module (one subprocess)."""
    return parse_datafiles(datafiles)


def unquote(name: str) -> str:
    return name[1:-1] if len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'" else name


def blocks(text: str, keyword: str) -> list[tuple[str | None, list[int]]]:
    """The `KEYWORD >` blocks of a datafile: for each, the NODE it belongs to (None before any)
    and the indices of its lines in `text.splitlines()`."""
    lines = text.splitlines()
    found: list[tuple[str | None, list[int]]] = []
    node: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if match := NODE_LINE.match(line):
            node = unquote(match["name"])
        elif (match := BLOCK_START.match(line)) and match["keyword"] == keyword:
            body = []
            while i < len(lines) and (not lines[i].strip() or lines[i][0].isspace()):
                body.append(i)
                i += 1
            found.append((node, body))
    return found


def edit_line(
    text: str,
    keyword: str,
    pattern: re.Pattern[str],
    edit: Callable[[re.Match[str]], str],
    last: bool = False,
) -> tuple[str, str | None]:
    """`text` with the first (or last) line of a `KEYWORD >` block that matches `pattern`
    replaced by `edit(match)`, and the NODE of that line. Fails when no line matches."""
    lines = text.splitlines()
    candidates = [
        (node, index) for node, body in blocks(text, keyword) for index in body if pattern.match(lines[index])
    ]
    assert candidates, f"no line of a {keyword} block matches {pattern.pattern}"
    node, index = candidates[-1] if last else candidates[0]
    match = pattern.match(lines[index])
    assert match is not None
    lines[index] = edit(match) + lines[index][match.end() :]
    return "\n".join(lines) + "\n", node


def copy_datafile(path: Path, tmp_path: Path) -> Path:
    """A copy of a project file under `tmp_path`, in the same folder layout."""
    copy = tmp_path / path.relative_to(TINYBIRD_DIR)
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, copy)
    return copy


def node_count(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if NODE_LINE.match(line))


def project_problems(summaries: dict[Path, dict[str, Any]]) -> list[str]:
    """What would break a deployment that the parser alone does not see: a materialization (or
    copy) into a datasource the project lacks, a node reading a table that is no datasource,
    pipe or other node of its pipe, and a materialization reading no table at all (a
    materialized view triggers on inserts into the table it reads)."""
    datasources = {summary["name"] for summary in summaries.values() if summary["kind"] == "datasource"}
    pipes = {summary["name"] for summary in summaries.values() if summary["kind"] == "pipe"}
    problems = []
    for path, summary in summaries.items():
        if summary["kind"] != "pipe":
            continue
        nodes = {node["name"] for node in summary["nodes"]}
        for node in summary["nodes"]:
            where = f"{path.name}, node {node['name']}"
            node_type = (node["type"] or "").upper()
            target = node["datasource"] if node_type == "MATERIALIZED" else node["params"].get("target_datasource")
            if node_type in {"MATERIALIZED", "COPY"} and target not in datasources:
                problems.append(f"{where}: writes to {target!r}, which is no datasource of the project")
            if node_type == "MATERIALIZED" and not node["tables"]:
                problems.append(f"{where}: a materialization that reads no table")
            for table in node["tables"]:
                if table not in datasources | pipes | (nodes - {node["name"]}):
                    problems.append(f"{where}: reads {table!r}, which is no datasource, pipe or node here")
    return problems


def test_lru_dict_is_installed_so_node_sql_is_checked() -> None:
    """Without lru-dict, `tinybird.sql_toolset` fails to import and the CLI skips every node's
    SQL check without a word; with it, the versions must be those pinned (an older venv would
    check with another parser)."""
    done = python(
        "import importlib.metadata as m, lru, tinybird.sql_toolset\n"
        "print(m.version('lru-dict'), m.version('tinybird-cli'))"
    )
    assert done.returncode == 0, f"cannot import lru or tinybird.sql_toolset in .venv-tinybird: {done.stderr}"
    pins = {match["name"].lower(): match["version"] for match in PIN.finditer(REQUIREMENTS.read_text())}
    assert done.stdout.split() == [pins["lru-dict"], pins["tinybird-cli"]], (
        f"installed (lru-dict, tinybird-cli): {done.stdout.split()}; pinned in {REQUIREMENTS.name}: "
        f"{pins['lru-dict']}, {pins['tinybird-cli']} (rerun tests/run.sh)"
    )


def test_tb_check_accepts_every_datafile(datafiles: list[Path]) -> None:
    """What CI promises: the project passes `tb check`, every file of it, each reported once."""
    done = tb_check(datafiles)
    assert done.returncode == 0, f"tb check failed:\n{done.stdout}\n{done.stderr}"
    for path in datafiles:
        assert done.stdout.count(f"** => File {path} processed correctly") == 1, done.stdout
    assert done.stdout.count("processed correctly") == len(datafiles), done.stdout


def test_tb_check_rejects_a_node_that_does_not_parse(datafiles: list[Path], tmp_path: Path) -> None:
    """The pipe with the most nodes, copied; its copy passes, then fails once the last `FROM
    table` line of its SQL reads `FROM FROM table`: the SQL check runs, on every node."""
    original = max((path for path in datafiles if path.suffix == ".pipe"), key=node_count)
    copy = copy_datafile(original, tmp_path)
    assert tb_check([copy]).returncode == 0, f"the unchanged copy of {original.name} fails already"

    # `head` is the line's indentation and its `FROM `: the line becomes `FROM FROM table`.
    text, node = edit_line(
        original.read_text(), "SQL", FROM_TABLE, lambda m: f"{m['head']}FROM {m['table']}", last=True
    )
    copy.write_text(text)
    done = tb_check([*datafiles, copy])
    output = done.stdout + done.stderr
    assert done.returncode != 0, f"tb check accepted {copy.name} with node {node} broken:\n{output}"
    assert f"error parsing {copy}" in done.stderr and "Syntax error" in done.stderr, output
    assert f"File {copy} processed correctly" not in done.stdout, output
    with pytest.raises(TinybirdError, match=re.escape(str(copy))):
        parse_datafiles([copy])


@pytest.mark.parametrize(
    ("breakage", "edit", "message"),
    [
        ("unknown type", lambda m: f"{m['head']}NoSuchType", "Unknown data type family: NoSuchType"),
        ("unclosed parenthesis", lambda m: f"{m['head']}{m['type']}((", "error parsing schema"),
    ],
)
def test_tb_check_rejects_a_broken_schema(
    datafiles: list[Path], tmp_path: Path, breakage: str, edit: Callable[[re.Match[str]], str], message: str
) -> None:
    """A datasource copied with its first column's type broken: `tb check` names the file."""
    original = next(path for path in datafiles if path.suffix == ".datasource")
    copy = copy_datafile(original, tmp_path)
    assert tb_check([copy]).returncode == 0, f"the unchanged copy of {original.name} fails already"
    text, _ = edit_line(original.read_text(), "SCHEMA", SCHEMA_COLUMN, edit)
    copy.write_text(text)
    done = tb_check([copy])
    assert done.returncode != 0, f"tb check accepted {copy.name} with {breakage}:\n{done.stdout}{done.stderr}"
    assert f"error parsing {copy}" in done.stderr and message in done.stderr, done.stderr
    with pytest.raises(TinybirdError, match=re.escape(str(copy))):
        parse_datafiles([copy])


def test_parser_reads_every_datafile_as_written(datafiles: list[Path], summaries: dict[Path, dict[str, Any]]) -> None:
    """Tinybird's parser sees, in each file, the nodes (pipes) and the columns (datasources)
    that the file's own lines declare."""
    assert list(summaries) == datafiles
    for path, summary in summaries.items():
        text = path.read_text()
        assert summary["kind"] == path.suffix[1:] and summary["name"] == path.stem, (path, summary["kind"])
        if summary["kind"] == "pipe":
            declared = [unquote(m["name"]) for line in text.splitlines() if (m := NODE_LINE.match(line))]
            assert [node["name"] for node in summary["nodes"]] == declared, path.name
            assert all(node["sql"].strip() for node in summary["nodes"]), path.name
        else:
            lines = text.splitlines()
            declared = [
                m["name"] for _, body in blocks(text, "SCHEMA") for i in body if (m := SCHEMA_COLUMN.match(lines[i]))
            ]
            assert declared, f"{path.name}: no column found in its SCHEMA"
            assert [column["name"] for column in summary["columns"]] == declared, path.name
            assert summary["engine"]["type"], f"{path.name}: no engine"


def test_every_reference_and_target_exists(summaries: dict[Path, dict[str, Any]]) -> None:
    assert project_problems(summaries) == []
    read = {
        table
        for summary in summaries.values()
        if summary["kind"] == "pipe"
        for node in summary["nodes"]
        for table in node["tables"]
    }
    # ClickHouse's parser found tables at all (an empty extraction would pass the check above).
    assert read, "no node reads any table, by sql_get_used_tables"


def test_unknown_references_and_targets_are_found(datafiles: list[Path], tmp_path: Path) -> None:
    """The project copied with one FROM renamed to a table that does not exist and one
    materialization retargeted to a datasource that does not exist: both are reported."""
    copies = [copy_datafile(path, tmp_path) for path in datafiles]
    reader = max((path for path in copies if path.suffix == ".pipe"), key=node_count)
    text, node = edit_line(reader.read_text(), "SQL", FROM_TABLE, lambda m: f"{m['head']}no_such_table", last=True)
    reader.write_text(text)
    materialized = next(
        (path for path in copies if path.suffix == ".pipe" and DATASOURCE_LINE.search(path.read_text())), None
    )
    assert materialized is not None, "no materialized pipe (DATASOURCE) in the project to retarget"
    materialized.write_text(DATASOURCE_LINE.sub("DATASOURCE no_such_target", materialized.read_text(), count=1))

    problems = project_problems(parse_datafiles(copies))
    assert any(f"{reader.name}, node {node}: reads 'no_such_table'" in problem for problem in problems), problems
    assert any(f"{materialized.name}" in p and "writes to 'no_such_target'" in p for p in problems), problems
    assert len(problems) == 2, problems


def test_chdb_harness_reads_the_files_as_tinybird_does(summaries: dict[Path, dict[str, Any]]) -> None:
    """tinybird_project.py (what test_tinybird.py deploys on chdb) has its own datafile parser;
    it must agree with Tinybird's on everything it deploys: columns, JSONPaths, engine, tokens,
    nodes, their types, targets and (plain) SQL."""
    project = Project.load(TINYBIRD_DIR)
    for path, summary in summaries.items():
        tokens = [(token["name"], token["permissions"]) for token in summary["tokens"]]
        if summary["kind"] == "datasource":
            ours = project.datasources[summary["name"]]
            theirs = [(c["name"], c["type"], c["jsonpath"]) for c in summary["columns"]]
            assert [(c.name, c.type, c.jsonpath) for c in ours.columns] == theirs, path.name
            engine = {
                "ENGINE" if key == "type" else f"ENGINE_{key.upper()}": value
                for key, value in summary["engine"].items()
            }
            assert ours.engine == engine, path.name
        else:
            ours = project.pipes[summary["name"]]
            theirs = [(n["name"], n["type"], n["datasource"]) for n in summary["nodes"]]
            assert [(n.name, n.type, n.datasource) for n in ours.nodes] == theirs, path.name
            for mine, node in zip(ours.nodes, summary["nodes"], strict=True):
                if not node["templated"]:
                    assert mine.sql.split() == node["sql"].split(), f"{path.name}, node {node['name']}"
        assert list(ours.tokens) == tokens, path.name


# An endpoint's node as another test renders it for chdb: typed parameters with defaults, an
# optional filter, and the template's `%` mark.
TEMPLATE = """%
SELECT count() AS calls
FROM mcp_calls
WHERE app_name = {{ String(app_name, 'demo') }}
  AND datetime >= {{ DateTime(start, '2024-01-01 00:00:00') }}
  {% if defined(tool) %}AND tool = {{ String(tool) }}{% end %}
LIMIT {{ Int32(limit, 10) }}"""


def test_render_sql_with_defaults() -> None:
    assert render_sql(TEMPLATE, {}) == (
        "\nSELECT count() AS calls\n"
        "FROM mcp_calls\n"
        "WHERE app_name = 'demo'\n"
        "  AND datetime >= '2024-01-01 00:00:00'\n"
        "  \n"
        "LIMIT toInt32('10')"
    )


def test_render_sql_with_every_parameter() -> None:
    """Values as an endpoint's query string gives them (strings), quoted and escaped, and the
    optional filter in."""
    rendered = render_sql(
        TEMPLATE, {"app_name": "it's", "start": "2025-02-03 04:05:06", "tool": "echo", "limit": "5"}
    )
    assert rendered == (
        "\nSELECT count() AS calls\n"
        "FROM mcp_calls\n"
        "WHERE app_name = 'it\\'s'\n"
        "  AND datetime >= '2025-02-03 04:05:06'\n"
        "  AND tool = 'echo'\n"
        "LIMIT toInt32('5')"
    )


def test_render_sql_takes_json_numbers() -> None:
    """A caller may pass numbers as numbers; Tinybird validates and quotes them the same way."""
    assert render_sql("%\nSELECT {{ Int32(limit, 10) }}", {"limit": 5}) == "\nSELECT toInt32('5')"


def test_render_sql_leaves_plain_sql_alone() -> None:
    sql = "SELECT name, value FROM metrics WHERE value > 1 ORDER BY name"
    assert render_sql(sql, {"unused": "x"}) == sql


@pytest.mark.parametrize(
    ("sql", "variables", "message"),
    [
        ("%\nSELECT {{ String(app_name) }}", {}, "app_name"),
        (TEMPLATE, {"limit": "ten"}, "Int32"),
        (TEMPLATE, {"start": "yesterday"}, "DateTime"),
        ("%\nSELECT 1 {% if defined(tool) %} WHERE 1", {}, "end"),
    ],
    ids=["required parameter missing", "not an Int32", "not a DateTime", "if without end"],
)
def test_render_sql_refuses_what_tinybird_refuses(sql: str, variables: dict[str, str], message: str) -> None:
    with pytest.raises(TinybirdError, match=message):
        render_sql(sql, variables)
