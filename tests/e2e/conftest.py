"""Fixtures of the end-to-end suite: the receiver and example binaries (built beforehand by
tests/run.sh; the fixtures never run cargo) and a fresh loopback Events API receiver per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e_support import HttpServer, Receiver, example_binary, workspace_binary, workspace_version


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
