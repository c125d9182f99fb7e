"""Reading the Prometheus text exposition format back, strictly, and PromQL's
`histogram_quantile`, for asserting on what a `.prometheus` endpoint serves.

`parse` accepts exactly what a well-formed exposition may contain and raises on anything else,
including what `promtool check metrics` lets through but a scrape would get wrong here: a metric
whose samples are split into several blocks, or whose `# HELP` / `# TYPE` come twice.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

Labels = frozenset[tuple[str, str]]


class ExpositionError(ValueError):
    """Text that is not a well-formed Prometheus exposition."""


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Labels
    value: float

    def label(self, key: str) -> str:
        """The value of label `key`; '' when absent, as in Prometheus."""
        return dict(self.labels).get(key, "")


@dataclass
class Family:
    """One metric: its `# HELP`, `# TYPE` and samples (`_bucket`, `_sum`, `_count` included)."""

    name: str
    help: str | None = None
    type: str | None = None
    samples: list[Sample] = field(default_factory=list)

    def series(self, suffix: str = "") -> dict[Labels, float]:
        """Samples named `name + suffix`, by label set; a label set seen twice is an error."""
        found: dict[Labels, float] = {}
        for sample in self.samples:
            if sample.name == self.name + suffix:
                if sample.labels in found:
                    raise ExpositionError(f"{sample.name}{dict(sample.labels)} appears twice")
                found[sample.labels] = sample.value
        return found


def parse(text: str) -> dict[str, Family]:
    """The families of `text`, in order of appearance."""
    families: dict[str, Family] = {}
    current: Family | None = None

    def enter(name: str, line_no: int) -> Family:
        nonlocal current
        if current is None or current.name != name:
            if name in families:
                raise ExpositionError(f"line {line_no}: {name} resumes after another metric")
            current = families[name] = Family(name)
        return current

    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                family = enter(parts[2], line_no)
                attribute = parts[1].lower()
                if getattr(family, attribute) is not None:
                    raise ExpositionError(f"line {line_no}: second {parts[1]} for {family.name}")
                if family.samples:
                    raise ExpositionError(f"line {line_no}: {parts[1]} after samples of {family.name}")
                setattr(family, attribute, parts[3] if len(parts) == 4 else "")
            continue
        sample = parse_sample(line, line_no)
        enter(family_name(sample.name, current), line_no).samples.append(sample)
    return families


def family_name(sample_name: str, current: Family | None) -> str:
    """The family a sample belongs to: its own name, or for `_bucket`, `_sum` and `_count` of the
    histogram being read, that histogram."""
    if current is not None and current.type == "histogram":
        for suffix in HISTOGRAM_SUFFIXES:
            if sample_name == current.name + suffix:
                return current.name
    return sample_name


def parse_sample(line: str, line_no: int) -> Sample:
    """`name{label="value",...} value [timestamp]`, label values unescaped."""
    try:
        return read_sample(line, line_no)
    except IndexError:
        raise ExpositionError(f"line {line_no}: unterminated labels in {line!r}") from None


def read_sample(line: str, line_no: int) -> Sample:
    match = NAME.match(line)
    if match is None:
        raise ExpositionError(f"line {line_no}: no metric name in {line!r}")
    name, pos = match.group(), match.end()
    labels: dict[str, str] = {}
    if pos < len(line) and line[pos] == "{":
        pos += 1
        while line[pos] != "}":
            key_match = LABEL_NAME.match(line, pos)
            if key_match is None or line[key_match.end() : key_match.end() + 2] != '="':
                raise ExpositionError(f"line {line_no}: bad label at column {pos}: {line!r}")
            key, pos = key_match.group(), key_match.end() + 2
            value = []
            while line[pos] != '"':
                if line[pos] == "\\":
                    pos += 1
                    if line[pos] not in ESCAPES:
                        raise ExpositionError(f"line {line_no}: bad escape \\{line[pos]}")
                    value.append(ESCAPES[line[pos]])
                else:
                    value.append(line[pos])
                pos += 1
            if key in labels:
                raise ExpositionError(f"line {line_no}: label {key} twice")
            labels[key] = "".join(value)
            pos += 1
            if line[pos] == ",":
                pos += 1
        pos += 1
    fields = line[pos:].split()
    if not 1 <= len(fields) <= 2:
        raise ExpositionError(f"line {line_no}: expected a value and an optional timestamp: {line!r}")
    return Sample(name, frozenset(labels.items()), parse_value(fields[0], line_no))


def parse_value(text: str, line_no: int) -> float:
    try:
        return float(text)  # also takes +Inf, -Inf and NaN, as Prometheus does
    except ValueError:
        raise ExpositionError(f"line {line_no}: {text!r} is not a number") from None


def bucket_bound(le: str) -> float:
    return math.inf if le == "+Inf" else float(le)


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float:
    """PromQL's `histogram_quantile(q, ...)` over one series' cumulative `buckets` (upper bound →
    count, the +Inf bucket included): linear interpolation inside the bucket where the rank
    falls, the lower bound of the first bucket taken as 0, and the highest finite bound when the
    rank falls in the +Inf bucket."""
    bounds = sorted(buckets)
    if not bounds or bounds[-1] != math.inf:
        return math.nan
    total = buckets[math.inf]
    if total == 0:
        return math.nan
    rank = q * total
    index = next(i for i, bound in enumerate(bounds) if buckets[bound] >= rank)
    if index == len(bounds) - 1:
        return bounds[-2] if len(bounds) > 1 else math.nan
    lower = bounds[index - 1] if index > 0 else 0.0
    below = buckets[bounds[index - 1]] if index > 0 else 0.0
    in_bucket = buckets[bounds[index]] - below
    return lower + (bounds[index] - lower) * (rank - below) / in_bucket


def nearest_rank(values: Iterable[float], q: float) -> float:
    """The `q`-quantile of `values` by the nearest-rank method: the smallest value with at least
    `q` of all values at or below it."""
    ordered = sorted(values)
    # Rounded first, or a product like 0.07 * 100 (7.000000000000001) would take the next rank.
    rank = math.ceil(round(q * len(ordered), 9))
    return ordered[max(rank, 1) - 1]
