"""Fixtures of the end-to-end suite: the receiver and example binaries (built beforehand by
tests/run.sh; the fixtures never run cargo), a fresh loopback Events API receiver per test, a
Prometheus server scraping an exposition the test sets, and a check that no test's server
spooled to the user's cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

# Real rows in two batches for the dashboard tests, produced once per test session, whichever
# modules use them: defined here, a session-scoped fixture is one for the whole suite.
from dashboard_rows import dashboard_batches  # noqa: F401 (a fixture)
from e2e_support import (
    ClientRun,
    HttpServer,
    Receiver,
    default_spool_roots,
    example_binary,
    spool_footprint,
    workspace_binary,
    workspace_version,
)
from prometheus_server import ExpositionServer, PrometheusServer


@pytest.fixture(autouse=True)
def _no_spool_in_the_users_cache() -> Iterator[None]:
    """Every server a test starts spools under the test's temporary directory (`server_env`),
    never to its default place in the user's cache, where what one test left undelivered would
    reach a later test's receiver (or the user's next run of the example). Fails the test that
    wrote there, created or deleted anything there included (a spool file written at exit and
    delivered at once leaves nothing behind but its directory's new modification time)."""
    roots = default_spool_roots()
    before = spool_footprint(roots)
    yield
    after = spool_footprint(roots)
    changed = sorted(str(path) for path in before.keys() | after.keys() if before.get(path) != after.get(path))
    assert not changed, (
        "a server of this test used its default spool, in the user's cache: give it its own "
        f"(e2e_support.server_env); changed: {changed}"
    )


@pytest.fixture(scope="session")
def version() -> str:
    """The workspace version, which every event must carry."""
    return workspace_version()


@pytest.fixture(scope="session")
def receiver_bin() -> Path:
    return workspace_binary("mcp-analytics-receiver")


@pytest.fixture(scope="session")
def stdio_server_bin() -> Path:
    return example_binary("rmcp_stdio")


@pytest.fixture(scope="session")
def http_server_bin() -> Path:
    return example_binary("rmcp_http")


@pytest.fixture
def receiver(receiver_bin: Path, tmp_path: Path) -> Iterator[Receiver]:
    """A receiver on a free loopback port, its rows collected from a thread; stopped (SIGTERM,
    then SIGKILL) at teardown, whatever the test's outcome."""
    workdir = tmp_path / "receiver"
    workdir.mkdir()
    receiver = Receiver(receiver_bin, workdir)
    try:
        yield receiver
    finally:
        receiver.stop()


def _http_server(binary: Path, receiver: Receiver, tmp_path: Path, stateless: bool) -> Iterator[HttpServer]:
    """`rmcp_http` delivering to `receiver`, killed at teardown whatever the test's outcome."""
    workdir = tmp_path / "server"
    workdir.mkdir()
    server = HttpServer(binary, receiver.url, workdir, stateless=stateless)
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def http_server(http_server_bin: Path, receiver: Receiver, tmp_path: Path) -> Iterator[HttpServer]:
    yield from _http_server(http_server_bin, receiver, tmp_path, stateless=False)


@pytest.fixture
def stateless_http_server(http_server_bin: Path, receiver: Receiver, tmp_path: Path) -> Iterator[HttpServer]:
    yield from _http_server(http_server_bin, receiver, tmp_path, stateless=True)


@pytest.fixture
def clients() -> Iterator[list[ClientRun]]:
    """The clients a test started; killed at teardown if still running."""
    runs: list[ClientRun] = []
    try:
        yield runs
    finally:
        for run in runs:
            run.kill()


@pytest.fixture
def exposition_server() -> Iterator[ExpositionServer]:
    """A stand-in for Tinybird's Prometheus endpoint, serving an empty body until the test sets
    one (`set_body`); stopped at teardown."""
    with ExpositionServer() as server:
        yield server


@pytest.fixture
def prometheus(exposition_server: ExpositionServer) -> Iterator[PrometheusServer]:
    """A real Prometheus scraping `exposition_server` every second with its token; stopped
    (SIGTERM, then SIGKILL) and its data removed at teardown, whatever the test's outcome."""
    with PrometheusServer(exposition_server) as prometheus:
        yield prometheus
