"""Tinybird's Classic CLI (`tinybird-cli`), from the suite: `tb check`, the CLI's own datafile
parser, and its SQL template renderer.

The CLI pins click 8.1 and pydantic 2.8, which the MCP SDK of the suite's .venv cannot share, so
it lives in a venv of its own, .venv-tinybird (tests/run.sh creates it from
tests/e2e/requirements-tinybird.txt), and the suite reaches it through subprocesses only: `tb`
itself, or `tinybird_cli_worker.py` under that venv's Python, with JSON on stdin and stdout.

Every subprocess is bounded (`TIMEOUT`) and runs with a minimal environment: the CLI substitutes
environment variables (`$NAME`) into node SQL when it parses, and would use `TB_TOKEN` or
`TB_HOST` to reach Tinybird; neither may depend on who runs the tests.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from e2e_support import REPO_ROOT

VENV = REPO_ROOT / ".venv-tinybird"
REQUIREMENTS = REPO_ROOT / "tests" / "e2e" / "requirements-tinybird.txt"
WORKER = Path(__file__).resolve().with_name("tinybird_cli_worker.py")
# Generous: `tb check` of the whole project takes about a second.
TIMEOUT = 30.0
# All the CLI needs from the environment; no TB_* variable, no proxy (nothing here goes online).
KEPT_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")


class TinybirdError(ValueError):
    """Tinybird refused the input: a datafile its parser rejects, a template it cannot render."""


def venv_bin(name: str) -> Path:
    """An executable of .venv-tinybird; fails the test, saying how to create the venv, when it
    is missing."""
    path = VENV / "bin" / name
    if not path.is_file():
        pytest.fail(
            f"{path} is missing: the Tinybird CLI's venv {VENV} is not set up. Create it with "
            f"`bash tests/run.sh` (its step \"tinybird cli environment\") or by hand: "
            f"`python3 -m venv .venv-tinybird && .venv-tinybird/bin/python -m pip install "
            f"-r tests/e2e/requirements-tinybird.txt` (from {REPO_ROOT})",
            pytrace=False,
        )
    return path


def environment() -> dict[str, str]:
    return {name: os.environ[name] for name in KEPT_ENVIRONMENT if name in os.environ}


def run(
    args: Sequence[str | Path], stdin: str | None = None, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Runs a command of .venv-tinybird from the repository's root; fails the test on timeout."""
    command = [str(arg) for arg in args]
    try:
        return subprocess.run(
            command,
            input=stdin,
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            env=environment(),
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(command)} did not finish within {timeout} s", pytrace=False)


def python(code: str) -> subprocess.CompletedProcess[str]:
    """`code` run by .venv-tinybird's Python, isolated (`-I`: no PYTHON* variable, no user site,
    not the suite's modules)."""
    return run([venv_bin("python"), "-I", "-c", code])


def tb_check(paths: Iterable[Path | str]) -> subprocess.CompletedProcess[str]:
    """`tb check PATH...`: parses each datafile and runs every node's SQL through ClickHouse's
    parser, offline. The CLI stops at the first file it rejects (exit status 1, the error on
    stderr); each file it accepts gets `** => File PATH processed correctly` on stdout.

    `--no-version-warning` is needed, not cosmetic: without it every `tb` command first asks PyPI
    for the CLI's latest version, and fails when it cannot reach it."""
    return run([venv_bin("tb"), "--no-version-warning", "check", *map(str, paths)])


def _call_worker(request: Mapping[str, Any]) -> Any:
    """Sends one request to `tinybird_cli_worker.py`; its result, or TinybirdError when Tinybird
    refused the input. Fails the test if the worker itself breaks."""
    done = run([venv_bin("python"), "-I", WORKER], stdin=json.dumps(request))
    try:
        answer = json.loads(done.stdout) if done.returncode == 0 else None
    except json.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict) or "ok" not in answer:
        pytest.fail(
            f"tinybird_cli_worker.py ({request['op']}) exited with {done.returncode}; "
            f"stdout: {done.stdout[-2000:]!r}; stderr: {done.stderr[-4000:]}",
            pytrace=False,
        )
    if not answer["ok"]:
        raise TinybirdError(answer["error"])
    return answer["result"]


def parse_datafiles(paths: Iterable[Path]) -> dict[Path, dict[str, Any]]:
    """Each `.pipe` and `.datasource` through the CLI's own parser (`parse_pipe`,
    `parse_datasource`), summarized. Raises TinybirdError, naming the file, for the first file the
    parser rejects (with lru-dict installed, that includes SQL ClickHouse's parser rejects).

    A pipe: `{"kind": "pipe", "name", "description", "tokens": [{"name", "permissions"}],
    "nodes": [...], "warnings"}`, each node `{"name", "sql" (as in the file, a template's leading
    `%` included), "templated", "type" (ENDPOINT, MATERIALIZED, COPY, ... as written, or None),
    "datasource" (a materialization's target), "description", "params" (any other node setting),
    "tables" (what its SQL reads, by ClickHouse's parser; `db.name` when qualified),
    "table_functions"}`.

    A datasource: `{"kind": "datasource", "name", "description", "tokens", "columns": [{"name",
    "type" (the full ClickHouse type, `Nullable(...)` included), "nullable", "jsonpath",
    "default_value", "codec"}], "schema", "engine": {"type", "partition_key", "sorting_key",
    "ttl", "settings", ... as present}, "params", "warnings"}`.
    """
    paths = list(paths)
    result = _call_worker({"op": "parse", "paths": [str(path) for path in paths]})
    return {path: result[str(path)] for path in paths}


def render_sql(sql: str, variables: Mapping[str, Any], test_mode: bool = False) -> str:
    """`sql` rendered by Tinybird's `render_sql_template`, with `variables` as an endpoint's
    request parameters (strings, as in a query string, or JSON numbers and booleans).

    A node's leading `%` (the mark of a template) is dropped first, as Tinybird does. Typed
    parameters (`{{ String(name, 'default') }}`, `DateTime`, `Int32`, ...) are validated and
    quoted; a missing one takes its default; `{% if defined(name) %} ... {% end %}` keeps its
    body only when `name` is given. Raises TinybirdError when Tinybird would reject the request
    (a required parameter missing, a value not of its type) or the template (an `if` without
    `end`). `test_mode` fills missing parameters with placeholders, as `tb check` does."""
    return _call_worker({"op": "render", "sql": sql, "variables": dict(variables), "test_mode": test_mode})
