"""/metrics in Prometheus' text format: requests, errors by code, latency, batch sizes, queue depth.

A few plain counters and histograms (no client library needed for so little). With
`--workers N`, each worker process counts its own requests.

Example:
    metrics = Metrics()
    metrics.observe_request(route="/v1/models/{name}:predict", method="POST", code=200, seconds=0.012)
    text = metrics.render()
"""

from __future__ import annotations

import bisect
import collections
import math
import threading

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Histogram:
    def __init__(self, buckets):
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self.requests = collections.Counter()  # (route, method, code) → count
        self.latency: dict[str, _Histogram] = {}
        self.batch_sizes = _Histogram(BATCH_BUCKETS)
        self.batch_seconds = _Histogram(LATENCY_BUCKETS)
        self.model_loads = collections.Counter()  # outcome → count
        self.inflight = 0
        self.gauges = {}  # name → (help, callable returning {labels tuple: value})

    def observe_request(self, *, route: str, method: str, code: int, seconds: float) -> None:
        with self._lock:
            self.requests[(route, method, str(code))] += 1
            self.latency.setdefault(route, _Histogram(LATENCY_BUCKETS)).observe(seconds)

    def observe_batch(self, size: int, seconds: float) -> None:
        with self._lock:
            self.batch_sizes.observe(size)
            self.batch_seconds.observe(seconds)

    def render(self) -> str:
        lines = []

        def family(name, kind, help_text):
            lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"])

        with self._lock:
            family("corolla_requests_total", "counter", "HTTP requests answered, by route template, method and status code.")
            for (route, method, code), count in sorted(self.requests.items()):
                lines.append(f"corolla_requests_total{_labels(route=route, method=method, code=code)} {count}")
            errors = collections.Counter()
            for (_, _, code), count in self.requests.items():
                if int(code) >= 400:
                    errors[code] += count
            family("corolla_request_errors_total", "counter", "HTTP requests answered with a 4xx or 5xx status, by code.")
            for code, count in sorted(errors.items()):
                lines.append(f"corolla_request_errors_total{_labels(code=code)} {count}")
            family("corolla_request_duration_seconds", "histogram", "Time from request to response, by route template.")
            for route, histogram in sorted(self.latency.items()):
                lines.extend(_histogram_lines("corolla_request_duration_seconds", histogram, route=route))
            family("corolla_batch_size", "histogram", "Images per batch run through the model.")
            lines.extend(_histogram_lines("corolla_batch_size", self.batch_sizes))
            family("corolla_batch_duration_seconds", "histogram", "Time the model took per batch.")
            lines.extend(_histogram_lines("corolla_batch_duration_seconds", self.batch_seconds))
            family("corolla_model_loads_total", "counter", "Model versions loaded, by outcome.")
            for outcome, count in sorted(self.model_loads.items()):
                lines.append(f"corolla_model_loads_total{_labels(outcome=outcome)} {count}")
            family("corolla_inflight_requests", "gauge", "Requests being answered now.")
            lines.append(f"corolla_inflight_requests {self.inflight}")
        for name, (help_text, read) in sorted(self.gauges.items()):
            family(name, "gauge", help_text)
            for labels, value in read().items():
                lines.append(f"{name}{_labels(**dict(labels))} {value}")
        return "\n".join(lines) + "\n"


def _histogram_lines(name: str, histogram: _Histogram, **labels) -> list[str]:
    lines, cumulative = [], 0
    for bound, count in zip((*histogram.buckets, math.inf), histogram.counts):
        cumulative += count
        le = "+Inf" if bound == math.inf else f"{bound:g}"
        lines.append(f"{name}_bucket{_labels(**labels, le=le)} {cumulative}")
    lines.append(f"{name}_sum{_labels(**labels)} {histogram.sum:.6f}")
    lines.append(f"{name}_count{_labels(**labels)} {cumulative}")
    return lines


def _labels(**labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items()) + "}"


def _escape(value) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
