"""The Prometheus harness (prometheus_server.py) against a real Prometheus and a tiny synthetic
exposition: that a test can tell which body Prometheus stored and query exactly at it, and the
facts about `increase`, `rate` and staleness that the dashboard tests rely on (listed in the
harness' docstring), each checked here on the numbers Prometheus returns."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request

import pytest

from prometheus_server import (
    CONTENT_TYPE,
    ENDPOINT_PATH,
    ExpositionServer,
    PrometheusServer,
    PromQLError,
    Scrape,
)

# Each wait is bounded so that a test's waits together stay within pytest's 60 s; Prometheus
# 2.42 only starts scraping some 5 s after it is ready (its scrape manager applies new targets
# every 5 s), which the first wait of each test absorbs.
FIRST_WAIT_S = 20.0
NEXT_WAIT_S = 15.0
WINDOW_S = 300  # `[5m]`: every sample of a test's short run


def exposition(**series: float) -> str:
    """A body with one counter `c`, one series per keyword (`s` label → value)."""
    lines = ["# HELP c a counter of the test", "# TYPE c counter"]
    lines += [f'c{{s="{name}"}} {value:g}' for name, value in series.items()]
    return "\n".join(lines) + "\n"


def by_series(result: list[tuple[dict[str, str], float]]) -> dict[str, float]:
    """A query's result by the `s` label of its series."""
    values = {labels.get("s", ""): value for labels, value in result}
    assert len(values) == len(result), f"series told apart by more than `s`: {result}"
    return values


def extrapolated_increase(points: list[tuple[float, float]], at: float, range_s: int) -> float:
    """`increase(c[range])` evaluated at `at` over a counter's samples in that window, computed
    as Prometheus 2.42 does (promql/functions.go, extrapolatedRate): the rise between the first
    and last samples (resets added back), extrapolated towards the window's ends by the gap to
    each (at most to the counter's zero at the start), or by half the average spacing when the
    gap exceeds 1.1 spacings. Durations are taken between whole milliseconds, as Prometheus
    does: in float seconds near 1.8e9, one would be off by up to a few 1e-7 s."""
    assert len(points) >= 2, points
    ms = [(round(t * 1000), value) for t, value in points]
    (first_ms, first_v), (last_ms, last_v) = ms[0], ms[-1]
    at_ms = round(at * 1000)
    rise = last_v - first_v + sum(prev for (_, prev), (_, cur) in zip(ms, ms[1:]) if cur < prev)
    sampled = (last_ms - first_ms) / 1000
    average = sampled / (len(ms) - 1)
    to_start = (first_ms - (at_ms - range_s * 1000)) / 1000
    to_end = (at_ms - last_ms) / 1000
    if rise > 0 and first_v >= 0:
        to_start = min(to_start, sampled * first_v / rise)
    threshold = average * 1.1
    interval = sampled + (to_start if to_start < threshold else average / 2)
    interval += to_end if to_end < threshold else average / 2
    return rise * (interval / sampled)


def test_exposition_server_answers_as_tinybird() -> None:
    """The bearer token is checked (401 without, 403 with another), the body is served as the
    text format, each `set_body` is the next generation, and every request is logged with the
    generation it got. A body with sample timestamps is refused."""
    with ExpositionServer(token="right", body=exposition(a=1)) as server:

        def get(path: str, token: str | None) -> tuple[int, str, str]:
            request = urllib.request.Request(f"http://{server.address}{path}")
            if token is not None:
                request.add_header("Authorization", f"Bearer {token}")
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            try:
                with opener.open(request, timeout=10) as response:
                    return response.status, response.headers["Content-Type"], response.read().decode()
            except urllib.error.HTTPError as error:
                return error.code, error.headers["Content-Type"], error.read().decode()

        assert get(ENDPOINT_PATH, "right") == (200, CONTENT_TYPE, exposition(a=1))
        assert server.set_body(exposition(a=2)) == 1 == server.generation
        assert get(ENDPOINT_PATH, "right") == (200, CONTENT_TYPE, exposition(a=2))
        assert get(ENDPOINT_PATH, None)[0] == 401
        assert get(ENDPOINT_PATH, "wrong")[0] == 403
        assert get("/v0/pipes/other.prometheus", "right")[0] == 404
        assert [(served.status, served.generation) for served in server.served()] == [
            (200, 0), (200, 1), (401, None), (403, None), (404, None),
        ]
        # Only Prometheus' requests are scrapes.
        assert server.scrapes() == []
        with pytest.raises(ValueError, match="timestamps"):
            server.set_body('c{s="a"} 1 1700000000000\n')
        assert server.generation == 1


def test_a_counter_born_at_zero_increases_by_exactly_its_rise(
    exposition_server: ExpositionServer, prometheus: PrometheusServer
) -> None:
    """`a` served as 0, then as 3: at the last scrape waited for, `increase` is exactly 3
    (nothing to extrapolate: the window ends there, and its start stops at the counter's zero),
    `rate` over a minute 3/60. `b`, served as 1 then 2, is extrapolated towards the window's
    start by half a scrape interval, as Prometheus does when a series starts well inside the
    window above 0. Between scrapes, as Grafana's `now` usually is, the window's end is
    extrapolated too. The formula here reproduces each from the stored samples."""
    prom, served = prometheus, exposition_server
    first = served.set_body(exposition(a=0, b=1))
    before = prom.await_generation(first, scrapes=2, timeout=FIRST_WAIT_S)
    second = served.set_body(exposition(a=3, b=2))
    after = prom.await_generation(second, scrapes=2, timeout=NEXT_WAIT_S)
    assert before[-1] < after[0]
    at = after[-1]
    increase = f"increase(c[{WINDOW_S}s])"

    assert by_series(prom.query("c", before[-1])) == {"a": 0, "b": 1}
    assert by_series(prom.query("c", at)) == {"a": 3, "b": 2}
    assert by_series(prom.query(increase, before[-1])) == {"a": 0, "b": 0}
    assert by_series(prom.query(increase, at))["a"] == 3
    assert by_series(prom.query("increase(c[1m])", at))["a"] == 3
    assert by_series(prom.query("rate(c[1m])", at))["a"] == pytest.approx(3 / 60, rel=1e-12)
    assert by_series(prom.query(f"resets(c[{WINDOW_S}s])", at)) == {"a": 0, "b": 0}
    assert by_series(prom.query(f"max_over_time(c[{WINDOW_S}s])", at)) == {"a": 3, "b": 2}
    # A range query ending at `at` ends with the instant query's value there.
    [(_, points)] = prom.query_range(f'increase(c{{s="a"}}[{WINDOW_S}s])', at - 2, at, 1)
    assert [round(t - at, 3) for t, _ in points] == [-2, -1, 0] and points[-1][1] == 3, points

    # Every value of `increase`, at `at` and half a scrape interval after, from the samples.
    for when in (at, at + 0.5):
        stored = {labels["s"]: points for labels, points in prom.samples("c", when, f"{WINDOW_S}s")}
        assert [value for _, value in stored["a"]][:2] == [0, 0] and stored["a"][-1][1] == 3
        computed = {name: extrapolated_increase(points, when, WINDOW_S) for name, points in stored.items()}
        assert by_series(prom.query(increase, when)) == pytest.approx(computed, rel=1e-12), stored
        assert computed["b"] > 1
    # At Prometheus' now: at least the rise, at most 1.1 average spacings more of it (four
    # samples or more: 0, 0, 3, 3, ...).
    now = by_series(prom.query(increase))["a"]
    assert 3 <= now <= 3 * (1 + 1.1 / 3)


def test_a_counter_born_above_zero_hides_its_first_increments(
    exposition_server: ExpositionServer, prometheus: PrometheusServer
) -> None:
    """`born` first appears at 3: `increase` returns nothing for it while it has one sample,
    then 0; its three increments are never seen, unlike those of `zeroed`, served as 0 before
    (why the endpoint serves a tool's errors as 0 before its first one)."""
    prom, served = prometheus, exposition_server
    prom.await_generation(served.set_body(exposition(zeroed=0)), scrapes=2, timeout=FIRST_WAIT_S)
    later = prom.await_generation(served.set_body(exposition(zeroed=3, born=3)), scrapes=2, timeout=NEXT_WAIT_S)

    increase = f"increase(c[{WINDOW_S}s])"
    [(_, born)] = prom.samples('c{s="born"}', later[-1])
    first_born = born[0][0]
    assert born[0][1] == 3 and first_born <= later[0], born
    assert by_series(prom.query("c", first_born)) == {"zeroed": 3, "born": 3}
    assert by_series(prom.query(increase, first_born)) == {"zeroed": 3}
    assert by_series(prom.query(increase, later[-1])) == {"zeroed": 3, "born": 0}
    # A `sum(increase(...))` panel shows 3 of the 6 served.
    assert prom.value(f"sum({increase})", later[-1]) == 3
    assert prom.value("sum(c)", later[-1]) == 6


def test_a_series_missing_from_a_later_body_goes_stale(
    exposition_server: ExpositionServer, prometheus: PrometheusServer
) -> None:
    """`gone` is in the first body only: instant queries return it up to the last scrape of
    that body and not from the first scrape without it (its stale marker); `increase` over a
    window holding its earlier samples still does (range selectors skip stale markers)."""
    prom, served = prometheus, exposition_server
    before = prom.await_generation(served.set_body(exposition(kept=0, gone=5)), scrapes=2, timeout=FIRST_WAIT_S)
    after = prom.await_generation(served.set_body(exposition(kept=2)), scrapes=2, timeout=NEXT_WAIT_S)

    assert by_series(prom.query("c", before[-1])) == {"kept": 0, "gone": 5}
    assert by_series(prom.query("c", after[0])) == {"kept": 2}
    assert by_series(prom.query("c", after[-1])) == {"kept": 2}
    assert by_series(prom.query(f"increase(c[{WINDOW_S}s])", after[-1])) == {"kept": 2, "gone": 0}
    [(_, points)] = prom.samples('c{s="gone"}', after[-1])
    assert {value for _, value in points} == {5} and points[-1][0] < after[0], points


def test_a_wrong_token_fails_every_scrape() -> None:
    """Prometheus sends the configured bearer token: with another one, the endpoint answers
    403, `up` is 0, nothing is scraped, and the target says why."""
    with ExpositionServer(token="right", body=exposition(a=1)) as served:
        with PrometheusServer(served, credentials="wrong") as prom:

            def two_refused(scrapes: list[Scrape]) -> bool:
                return sum(scrape.request is not None for scrape in scrapes) >= 2

            scrapes = prom.await_scrapes(two_refused, timeout=FIRST_WAIT_S)
            assert {scrape.up for scrape in scrapes} == {0}
            assert {request.status for scrape in scrapes for request in scrape.requests} == {403}
            assert served.scrapes() == []
            assert prom.value("scrape_samples_scraped", scrapes[-1].at) == 0
            assert prom.query("c") == []
            [target] = prom.targets()
            assert target["health"] == "down"
            assert "403" in target["lastError"], target


def test_await_generation_fails_at_once_for_a_body_replaced_unscraped(
    exposition_server: ExpositionServer, prometheus: PrometheusServer
) -> None:
    """A generation replaced before Prometheus could store it enough times can never be: the
    wait says so at once instead of running out its time."""
    replaced = exposition_server.set_body(exposition(a=1))
    exposition_server.set_body(exposition(a=2))
    started = time.monotonic()
    with pytest.raises(AssertionError, match=f"generation {replaced} was replaced"):
        prometheus.await_generation(replaced, scrapes=2, timeout=FIRST_WAIT_S)
    assert time.monotonic() - started < FIRST_WAIT_S / 2


def test_queries_report_prometheus_errors(prometheus: PrometheusServer) -> None:
    with pytest.raises(PromQLError, match="bad_data"):
        prometheus.query("sum(")
    with pytest.raises(PromQLError, match="range vectors"):
        prometheus.query("up[1m]")


def test_stop_leaves_nothing_running() -> None:
    """After `stop()`: the process reaped (exit 0 on SIGTERM), its port and the exposition's
    closed, its temporary directory gone, its log kept; a second `stop()` does nothing."""
    with ExpositionServer() as served:
        prom = PrometheusServer(served)
        try:
            directory, port, proc = prom.log_path.parent, prom.port, prom.proc
            assert proc is not None and directory.is_dir()
        finally:
            prom.stop()
        assert proc.returncode == 0, prom.describe()
        assert not directory.exists()
        assert "See you next time!" in prom.log()
        prom.stop()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", served.port), timeout=5).close()
