"""A real Prometheus server on loopback, scraping an exposition the test controls, for checking
what PromQL (the Grafana dashboard's panels) makes of the Tinybird endpoint's metrics.

`ExpositionServer` stands for Tinybird: it serves the current body at
`/v0/pipes/api_prometheus.prometheus`, behind `Authorization: Bearer <token>`, and logs every
request with the body generation it got. `PrometheusServer` runs Debian's `prometheus` (2.42)
with a generated config that scrapes it every second, and answers PromQL through the HTTP API.
A test swaps the body (`set_body`, a new generation), waits until Prometheus has stored that
generation (`await_generation`, which returns the timestamps of the scrapes that did), and
queries, preferably at the last of those (`at=`): there the result is exactly that body's,
whatever the machine's load.

How a scrape is told to have ingested a generation, without a marker metric among the metrics
under test: Prometheus scrapes one target sequentially (a scrape begins after the previous one
is committed) and stamps every sample of a scrape, `up` included, with the time the scrape
began (aligned to its 1 s grid only when that is at most 2 ms earlier), before its request; its
samples, `up` and the body's alike, are committed together. The exposition server notes the
time it answers each request. So a scrape's request is answered between its timestamp and the
next committed scrape's, and once that next one is committed, the request there is known to be
its own (on a starved machine a request of an earlier, timed-out scrape may land there too:
then which is which is left unknown, and the scrape is not counted); the scrape stored that
request's body if its `up` is 1. This needs samples stamped at scrape time, hence `set_body`
refuses a body whose samples carry their own timestamps (Tinybird's `.prometheus` output has
none; with `honor_timestamps`, the default, kept here as in tinybird/prometheus.yml, such
samples would keep theirs, and get no stale markers).

Prometheus 2.42 makes its first scrape about 5 s after `/-/ready` (its scrape manager takes new
targets every 5 s): the first wait of a test includes that.

What Prometheus 2.42 makes of a short run of scrapes, as test_prometheus_server.py checks
(scrapes every 1 s; `t` is the last scrape of the generation a test waited for):

* `increase` extrapolates: its rise between the window's first and last samples (resets added
  back) is scaled to the window, stretched by the gap between each end of the window and the
  nearest sample, or by half the average spacing where that gap exceeds 1.1 spacings; towards
  the start never further than where the counter would have been 0 (promql/functions.go,
  extrapolatedRate; the test recomputes every value it checks from the stored samples).
* A counter served as 0 (three scrapes), then as 3 (two): at `t`, `increase(c[5m])` and
  `increase(c[1m])` are exactly 3, `rate(c[1m])` 0.05: the first sample is 0, so the start
  is not stretched, and `t` is the window's end. Half a scrape after `t` (samples 0, 0, 0, 3,
  3), `increase` is 3 × 4.5 / 4 = 3.375; at Prometheus' now it was 3.0798. So a test compares at
  `t`; at any other time (Grafana's), `increase` is between the rise and 1 + 1.1 / (samples − 1)
  times it.
* A counter served as 1, then 2 (samples 1, 1, 1, 2, 2): its window starts long before it, so
  the start is stretched by half a spacing: `increase(c[5m])` at `t` is 1.125, not 1 (1.1667
  at the first scrape of 2). `resets` is 0 and `max_over_time` the last value for both.
* A counter born at 3 (absent from the earlier body, 3 in the later one): `increase(c[5m])`
  returns no series while it has one sample, then 0: its first three increments are never
  seen, and `sum(increase(...))` over it and a zero-filled counter that went 0 → 3 is 3 while
  `sum(c)` is 6. Hence the endpoint serves a tool's `mcp_errors_total` as 0 before its first
  error (zero-filling), so that `increase` sees that error.
* A series missing from a later body gets a stale marker at that body's first scrape: instant
  queries from there on return no series for it (at the scrape before, they still do), while
  `increase` over a window holding its earlier samples still returns it (0 here: range
  selectors skip stale markers). A failed scrape (`up` 0) writes stale markers for every
  series, so an instant query at Prometheus' now can miss every series on a starved machine;
  at `t` it cannot.
* A wrong bearer token: the endpoint answers 403, `up` is 0, `scrape_samples_scraped` 0, and
  the target's `lastError` is "server returned HTTP status 403 Forbidden".

Only 127.0.0.1, no fixed ports; Prometheus' config, TSDB and log live in a temporary directory
removed by `stop()`, which the context managers and the fixtures in conftest.py
(`exposition_server`, `prometheus`) always call.
Every wait polls a condition against a bounded deadline.
"""

from __future__ import annotations

import hmac
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from e2e_support import free_loopback_port

ENDPOINT_PATH = "/v0/pipes/api_prometheus.prometheus"
CONTENT_TYPE = "text/plain; version=0.0.4"
# The read token of the scrape, as a test's Tinybird would check it.
SCRAPE_TOKEN = "p.test-prometheus-read-token"
# The job of tinybird/prometheus.yml, so that `up{job="mcp_server"}` reads as in production.
JOB = "mcp_server"
SCRAPE_INTERVAL_S = 1
# Prometheus' own HTTP client identifies itself so; other clients of the exposition (a test's
# own GET) are no scrapes.
PROMETHEUS_USER_AGENT = "Prometheus/"
# Requests to Prometheus' API, and polls of a condition.
HTTP_TIMEOUT_S = 10.0
POLL_S = 0.1

# urllib would otherwise send loopback requests through a proxy named in the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

Labels = dict[str, str]
# Series with their points: (labels, [(Unix time in s, value), ...]).
Matrix = list[tuple[Labels, list[tuple[float, float]]]]


class PromQLError(RuntimeError):
    """Prometheus refused a query; the message holds its error type and text."""


# --------------------------------------------------------------------------------------------
# The exposition, served as Tinybird would


@dataclass(frozen=True)
class Served:
    """One request the exposition server answered."""

    at: float  # Unix time (s) when the body was chosen, before the response was sent
    status: int
    generation: int | None  # the body's generation; None when no body was sent
    user_agent: str

    @property
    def by_prometheus(self) -> bool:
        return self.user_agent.startswith(PROMETHEUS_USER_AGENT)


def sample_lines_with_timestamps(text: str) -> list[str]:
    """The sample lines of an exposition that carry a timestamp after their value. The value
    and the timestamp follow the labels' closing brace (label values may hold braces and
    spaces, numbers do not), or the metric name when there are no labels."""
    stamped = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        rest = line.rsplit("}", 1)[1] if "{" in line else line.split(None, 1)[-1]
        if len(rest.split()) > 1:
            stamped.append(line)
    return stamped


class ExpositionServer:
    """Tinybird's `GET /v0/pipes/api_prometheus.prometheus` on a free loopback port, served
    from a thread: the current body with `Content-Type: text/plain; version=0.0.4` to a request
    with `Authorization: Bearer <token>`; 401 without the header, 403 with another token (any
    status but 2xx fails a scrape, so the exact code matters to no assertion on Prometheus), 404
    on another path. The body passed here is generation 0; each `set_body` makes the next."""

    def __init__(self, token: str = SCRAPE_TOKEN, body: str = "") -> None:
        self.token = token
        self._cond = threading.Condition()
        self._body = b""
        self._generation = -1
        self._served: list[Served] = []
        self.set_body(body)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self.port: int = self._httpd.server_address[1]
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.address}{ENDPOINT_PATH}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="exposition", daemon=True
        )
        self._thread.start()
        self._stopped = False

    def __enter__(self) -> ExpositionServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_body(self, text: str) -> int:
        """Serves `text` from now on, to every request answered after this returns; returns its
        generation. Refuses samples with their own timestamps (see the module's docstring)."""
        stamped = sample_lines_with_timestamps(text)
        if stamped:
            raise ValueError(
                "samples with timestamps would be stored at those, not at the scrape's time, "
                f"and never go stale: {stamped[:3]}"
            )
        with self._cond:
            self._body = text.encode()
            self._generation += 1
            return self._generation

    @property
    def generation(self) -> int:
        with self._cond:
            return self._generation

    def served(self) -> list[Served]:
        """Every request answered so far, in order."""
        with self._cond:
            return list(self._served)

    def scrapes(self, generation: int | None = None) -> list[Served]:
        """Prometheus' requests answered with a body (of `generation`, if given)."""
        return [
            served
            for served in self.served()
            if served.by_prometheus and served.status == 200
            and (generation is None or served.generation == generation)
        ]

    def describe(self) -> str:
        """The request log, one line per request, for failure messages."""
        lines = [
            f"  {served.at:.3f} {served.status} gen={served.generation} {served.user_agent}"
            for served in self.served()
        ]
        return "exposition requests:\n" + ("\n".join(lines) or "  (none)")

    def stop(self) -> None:
        """Stops serving and closes the port; returns when the serving thread is gone."""
        if self._stopped:
            return
        self._stopped = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _answer(self, authorization: str | None, user_agent: str, path: str) -> tuple[int, bytes]:
        """The status and body for one request, logged under the lock that guards the body, so
        that the generation logged is the one sent."""
        scheme, _, credentials = (authorization or "").partition(" ")
        with self._cond:
            at = time.time()
            if urllib.parse.urlsplit(path).path != ENDPOINT_PATH:
                status, body, generation = 404, b"not found\n", None
            elif authorization is None:
                status, body, generation = 401, b'{"error": "token is required"}\n', None
            elif scheme.lower() != "bearer" or not hmac.compare_digest(credentials.strip(), self.token):
                status, body, generation = 403, b'{"error": "invalid token"}\n', None
            else:
                status, body, generation = 200, self._body, self._generation
            self._served.append(Served(at, status, generation, user_agent))
            self._cond.notify_all()
        return status, body

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = server._answer(
                    self.headers.get("Authorization"), self.headers.get("User-Agent", ""), self.path
                )
                self.send_response(status)
                self.send_header("Content-Type", CONTENT_TYPE if status == 200 else "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # `served()` is the log

        return Handler


# --------------------------------------------------------------------------------------------
# Prometheus


@dataclass(frozen=True)
class Scrape:
    """One scrape Prometheus committed, with Prometheus' requests the exposition server answered
    between its timestamp and the next committed scrape's: its own (none when it failed before
    reaching the server), and on a starved machine possibly one of an earlier scrape that had
    timed out before it was answered."""

    at: float  # the scrape's timestamp (Unix time, s, millisecond precision)
    up: float
    requests: tuple[Served, ...]

    @property
    def request(self) -> Served | None:
        """The scrape's request when it is the only one in its interval; None otherwise. A
        scrape with `up` 1 was answered within its timeout, before the next scrape began: its
        request is among its interval's, and with another one there, which is unknowable."""
        return self.requests[0] if len(self.requests) == 1 else None

    @property
    def ingested(self) -> int | None:
        """The generation whose samples this scrape stored, if it stored a body."""
        if self.up == 1 and self.request is not None and self.request.status == 200:
            return self.request.generation
        return None


def prometheus_binary() -> str:
    """`prometheus` on PATH; fails the test, saying what to install, when there is none."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(
            "prometheus is missing: install Debian's `prometheus` package (tests/run.sh does it when root)",
            pytrace=False,
        )
    return binary


def scrape_config(exposition: ExpositionServer, credentials: str, job: str) -> dict:
    """A config that scrapes `exposition` as tinybird/prometheus.yml scrapes Tinybird (the job,
    the path, the bearer token), over http, every second, keeping the endpoint's labels as
    served (`honor_labels`; it only matters for a served `job` or `instance` label, which the
    endpoint has none of)."""
    interval = f"{SCRAPE_INTERVAL_S}s"
    return {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {
                "job_name": job,
                "scheme": "http",
                "metrics_path": ENDPOINT_PATH,
                "honor_labels": True,
                "authorization": {"type": "Bearer", "credentials": credentials},
                "static_configs": [{"targets": [exposition.address]}],
            }
        ],
    }


def matrix(data: dict) -> Matrix:
    """A matrix result of the HTTP API (`resultType` "matrix") as `Matrix`."""
    if data["resultType"] != "matrix":
        raise PromQLError(f"a {data['resultType']}, not a range vector")
    return [(series["metric"], [(float(t), float(v)) for t, v in series["values"]]) for series in data["result"]]


class PrometheusServer:
    """`prometheus` on a free loopback port, scraping `exposition` with `credentials` (its token
    unless given), its config, TSDB and log in a temporary directory; started when `/-/ready`
    answers 200. A port taken by someone else between choosing and binding it is retried."""

    STARTUP_ATTEMPTS = 3

    def __init__(
        self,
        exposition: ExpositionServer,
        credentials: str | None = None,
        job: str = JOB,
        startup_timeout: float = 15.0,
    ) -> None:
        self.exposition = exposition
        self.job = job
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_text: str | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="prometheus-e2e-"))
        self.log_path = self._dir / "prometheus.log"
        self.config_path = self._dir / "prometheus.yml"
        config = scrape_config(exposition, exposition.token if credentials is None else credentials, job)
        self.config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML
        try:
            self._start(prometheus_binary(), startup_timeout)
        except BaseException:
            self.stop()
            raise

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start(self, binary: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for attempt in range(1, self.STARTUP_ATTEMPTS + 1):
            self.port = free_loopback_port()
            self.url = f"http://127.0.0.1:{self.port}"
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [
                        binary,
                        f"--config.file={self.config_path}",
                        f"--storage.tsdb.path={self._dir / 'data'}",
                        f"--web.listen-address=127.0.0.1:{self.port}",
                        "--log.level=debug",  # failed scrapes are logged at debug only
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self._dir,
                    env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                )
            while True:
                if self.proc.poll() is not None:
                    if "address already in use" in self.log() and attempt < self.STARTUP_ATTEMPTS:
                        break  # the free port was taken meanwhile: another one
                    raise AssertionError(f"prometheus exited ({self.proc.returncode}) before ready\n{self.describe()}")
                if self._ready():
                    return
                if time.monotonic() >= deadline:
                    raise AssertionError(f"prometheus not ready within {timeout}s\n{self.describe()}")
                time.sleep(0.05)

    def _ready(self) -> bool:
        try:
            with _OPENER.open(f"{self.url}/-/ready", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False  # not listening yet, or 503 while the TSDB starts

    def log(self) -> str:
        """Prometheus' log so far (kept once stopped)."""
        if self._log_text is not None:
            return self._log_text
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def describe(self, log_lines: int = 40) -> str:
        """The log's tail and the exposition's request log, for failure messages."""
        tail = "\n".join(f"  {line}" for line in self.log().splitlines()[-log_lines:])
        return f"prometheus log (last {log_lines} lines):\n{tail}\n{self.exposition.describe()}"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; the process reaped and the temporary directory
        removed (the log kept in memory for `log()`). Idempotent."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self._log_text is None:
            self._log_text = self.log()
        shutil.rmtree(self._dir, ignore_errors=True)

    # ----------------------------------------------------------------------------------------
    # The HTTP API

    def api(self, path: str, params: dict[str, str]) -> dict:
        """`POST /api/v1/<path>` with `params` form-encoded: the response's `data`; raises
        PromQLError with Prometheus' error text when it answers an error."""
        request = urllib.request.Request(
            f"{self.url}/api/v1/{path}", data=urllib.parse.urlencode(params).encode(), method="POST"
        )
        try:
            with _OPENER.open(request, timeout=HTTP_TIMEOUT_S) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as error:
            text = error.read().decode(errors="replace")
            try:
                answer = json.loads(text)
            except ValueError:
                raise PromQLError(f"{path} {params}: HTTP {error.code}: {text}") from None
        if answer.get("status") != "success":
            raise PromQLError(f"{params.get('query', path)}: {answer.get('errorType')}: {answer.get('error')}")
        return answer["data"]

    def query(self, expr: str, at: float | None = None) -> list[tuple[Labels, float]]:
        """`/api/v1/query`: an instant vector's series (or a scalar, with no labels) at `at`
        (Unix time, s; Prometheus' now when None), as (labels, value). The labels include the
        target's `job` and `instance`, and `__name__` where PromQL keeps it."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("query", params)
        kind, result = data["resultType"], data["result"]
        if kind == "vector":
            return [(series["metric"], float(series["value"][1])) for series in result]
        if kind == "scalar":
            return [({}, float(result[1]))]
        raise PromQLError(f"{expr}: a {kind}, not an instant vector (range vectors: samples())")

    def value(self, expr: str, at: float | None = None) -> float | None:
        """The value of an expression that yields at most one series; None when it yields none."""
        result = self.query(expr, at)
        if len(result) > 1:
            raise AssertionError(f"{expr}: {len(result)} series, expected at most one: {result}")
        return result[0][1] if result else None

    def samples(self, selector: str, at: float | None = None, window: str = "1h") -> Matrix:
        """The samples of `selector` in the `window` up to `at` (both ends included), exactly
        as stored: an instant query of `selector[window]` (stale markers left out)."""
        params = {"query": f"{selector}[{window}]"}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return matrix(self.api("query", params))

    def query_range(self, expr: str, start: float, end: float, step: float) -> Matrix:
        """`/api/v1/query_range`: `expr` evaluated at `start`, `start + step`, ... `end`."""
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        return matrix(self.api("query_range", params))

    def targets(self) -> list[dict]:
        """`/api/v1/targets`' active targets (health, lastError, lastScrape, labels)."""
        request = urllib.request.Request(f"{self.url}/api/v1/targets?state=active")
        with _OPENER.open(request, timeout=HTTP_TIMEOUT_S) as response:
            return json.load(response)["data"]["activeTargets"]

    # ----------------------------------------------------------------------------------------
    # Waiting for scrapes

    def scrapes(self) -> list[Scrape]:
        """The committed scrapes of the job whose request is known, in order: every committed
        scrape but the latest, each with the exposition request answered between its timestamp
        and the next committed scrape's (see the module's docstring). The latest is left out
        until the next one is committed: the request after it may be its own or that of a
        scrape still in flight."""
        committed = [
            (round(t * 1000), up)
            for _, points in self.samples(f'up{{job="{self.job}"}}')
            for t, up in points
        ]
        committed.sort()
        requests = [served for served in self.exposition.served() if served.by_prometheus]
        scrapes = []
        for (start_ms, up), (next_ms, _) in zip(committed, committed[1:]):
            between = tuple(served for served in requests if start_ms < served.at * 1000 < next_ms)
            scrapes.append(Scrape(start_ms / 1000, up, between))
        return scrapes

    def await_scrapes(
        self, until: int | Callable[[list[Scrape]], bool], timeout: float = 20.0, what: str = ""
    ) -> list[Scrape]:
        """Waits until `until` scrapes are known (an int), or until `until(scrapes)` holds;
        returns `scrapes()`. Fails early if Prometheus exits."""
        if isinstance(until, int):
            count = until
            predicate: Callable[[list[Scrape]], bool] = lambda scrapes: len(scrapes) >= count
            what = what or f"{count} scrapes"
        else:
            predicate, what = until, what or getattr(until, "__name__", "the condition")
        deadline = time.monotonic() + timeout
        while True:
            scrapes = self.scrapes()
            if predicate(scrapes):
                return scrapes
            if self.proc is None or self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited while waiting for {what}\n{self.describe()}")
            if time.monotonic() >= deadline:
                table = "\n".join(f"  {s.at:.3f} up={s.up:g} {s.requests}" for s in scrapes) or "  (none)"
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what}\nscrapes:\n{table}\n"
                    f"targets: {self.targets()}\n{self.describe()}"
                )
            time.sleep(POLL_S)

    def await_generation(self, generation: int, scrapes: int = 2, timeout: float = 20.0) -> list[float]:
        """Waits until Prometheus has stored `scrapes` scrapes of body `generation` (each with
        `up` 1); returns their timestamps (Unix time, s), in order. At the last of them, an
        instant query sees exactly that body, and a window reaching back to the first holds
        `scrapes` samples of it (what `rate` and `increase` need two of). Fails at once if the
        body was replaced before it could be scraped that often."""

        def ingested(known: list[Scrape]) -> list[float]:
            return [scrape.at for scrape in known if scrape.ingested == generation]

        def enough(known: list[Scrape]) -> bool:
            if len(ingested(known)) >= scrapes:
                return True
            # The generation first: once replaced, every request of it is in the log read next.
            current = self.exposition.generation
            served = self.exposition.scrapes(generation)
            settled = {request for scrape in known for request in scrape.requests}
            if current != generation and (len(served) < scrapes or settled.issuperset(served)):
                raise AssertionError(
                    f"generation {generation} was replaced by {current} after {len(served)} "
                    f"scrapes, {len(ingested(known))} of them stored; {scrapes} wanted\n{self.describe()}"
                )
            return False

        known = self.await_scrapes(enough, timeout, f"{scrapes} stored scrapes of generation {generation}")
        return ingested(known)
