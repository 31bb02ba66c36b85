"""Prometheus metrics (`/metrics`), multi-process aware.

When `PROMETHEUS_MULTIPROC_DIR` is set before Python starts (`label-studio-ml
start` sets it), prometheus-client keeps values in files there and
`/metrics` merges every gunicorn worker's; the gunicorn config marks dead
workers (`lsml.server.gunicorn_conf`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from lsml import setting_names

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

REQUESTS = Counter(
    "lsml_http_requests_total", "HTTP requests by route, method and status", ["route", "method", "status"]
)
LATENCY = Histogram("lsml_http_request_duration_seconds", "HTTP request latency by route", ["route"], buckets=_BUCKETS)
ERRORS = Counter("lsml_http_errors_total", "Error responses by error code", ["error"])
PREDICT_LATENCY = Histogram("lsml_predict_duration_seconds", "Time spent in the model's predict()", buckets=_BUCKETS)
PREDICT_TASKS = Counter("lsml_predicted_tasks_total", "Tasks sent to predict()")
PREDICT_STUCK = Gauge(
    "lsml_predict_stuck_threads",
    "predict() calls past LSML_PREDICT_TIMEOUT that have not returned",
    multiprocess_mode="livesum",
)
MODEL_LOAD = Histogram(
    "lsml_model_load_seconds",
    "Time to build a model instance (setup included)",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
MODEL_VERSION = Gauge(
    "lsml_model_version_info",
    "Model version loaded per project (1 = loaded here)",
    ["project", "model_version"],
    multiprocess_mode="livemax",
)
MODEL_VERSION_NUMBER = Gauge(
    "lsml_model_version_number",
    "Store version number loaded per project (0: untrained)",
    ["project"],
    multiprocess_mode="livemax",
)
FIT_SECONDS = Gauge(
    "lsml_model_fit_seconds",
    "How long the fit that produced the served version ran, per project (from the version's metadata)",
    ["project"],
    multiprocess_mode="livemax",
)
QUEUE_DEPTH = Gauge("lsml_training_queue_depth", "Training jobs waiting", multiprocess_mode="livemostrecent")
QUEUE_RUNNING = Gauge("lsml_training_jobs_running", "Training jobs running", multiprocess_mode="livemostrecent")
QUEUE_FAILED = Gauge(
    "lsml_training_jobs_failed", "Training jobs failed since start", multiprocess_mode="livemostrecent"
)
MODEL_EVICTIONS = Counter(
    "lsml_model_evictions_total",
    "Model instances dropped because more than LSML_MAX_LOADED_MODELS projects were loaded",
)
TRAINING_SUBMITTED = Counter("lsml_training_submitted_total", "Training triggers accepted", ["event"])
CATCHUP_RECOVERED = Counter(
    "lsml_catchup_recovered_total",
    "Annotation events Label Studio never delivered, found by catch-up and handed to training",
    ["event"],
)
CATCHUP_CHECKS = Counter("lsml_catchup_checks_total", "Catch-up checks of a project by outcome", ["outcome"])
CATCHUP_ENABLED = Gauge(
    "lsml_catchup_enabled",
    "1 when catch-up runs (LSML_CATCHUP_INTERVAL > 0 and Label Studio credentials known), else 0",
    multiprocess_mode="livemostrecent",
)
CATCHUP_AGE = Gauge(
    "lsml_catchup_watermark_age_seconds",
    "Seconds since catch-up last confirmed a project's watermark (every annotation accounted for up to then)",
    ["project"],
    multiprocess_mode="livemostrecent",
)


class _AcceptanceSnapshot(Collector):
    """One acceptance series family, from the state as read at the last scrape (`acceptance_state`).

    Not a Gauge: a Gauge keeps every series it was ever given, so versions that left the report (at most
    `lsml.acceptance.MAX_VERSIONS` per project are kept) would stay forever, one more per published
    version. A snapshot replaced at each scrape has exactly the report's series. The counts live in the
    shared state (written by whichever process trained), so every server process answers the same.
    """

    _type = "gauge"

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...]) -> None:
        # the attributes prometheus-client's own metrics carry: the docs' metrics reference reads them
        self._name, self._documentation, self._labelnames = name, documentation, labelnames
        self._rows: list[tuple[list[str], float]] = []

    def set_rows(self, rows: list[tuple[list[str], float]]) -> None:
        self._rows = rows  # one assignment: a concurrent scrape sees the old or the new list, whole

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self._name, self._documentation, labels=list(self._labelnames))
        for labels, value in self._rows:
            family.add_metric(labels, value)
        yield family


ACCEPTANCE = _AcceptanceSnapshot(
    "lsml_prediction_regions",
    "Predicted regions/choices annotators kept, changed or deleted, and regions they added, per project and "
    "model version (lsml.acceptance; a gauge: an edited annotation replaces what it counted before)",
    ("project", "model_version", "outcome"),
)
ACCEPTANCE_ANNOTATIONS = _AcceptanceSnapshot(
    "lsml_prediction_annotations",
    "Annotations started from a prediction of this project and model version (lsml.acceptance)",
    ("project", "model_version"),
)
_SNAPSHOTS = (ACCEPTANCE, ACCEPTANCE_ANNOTATIONS)
for _snapshot in _SNAPSHOTS:
    REGISTRY.register(_snapshot)

_loaded_versions: dict[str, str] = {}

#: The methods a request is counted under; any other (a client may send `X000000`) is counted as `other`,
#: so that no client can add a series to /metrics by inventing a method.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
#: A 401 is counted under these labels whatever the request named: an unauthenticated client chooses nothing.
UNAUTHENTICATED = ("unauthenticated", "any")


#: Where a request's start time waits in its WSGI environ for `observe_request`.
REQUEST_T0 = "lsml.t0"


def request_labels(method: str, route: str | None, status: int) -> tuple[str, str]:
    """(route, method) labels of a request: the route's rule (`unmatched` for none) and a known method
    (`other` for the rest); a 401 gets `UNAUTHENTICATED`. The label values are a fixed, small set."""
    if status == 401:
        return UNAUTHENTICATED
    return route if route is not None else "unmatched", method if method in KNOWN_METHODS else "other"


def count_error(code: str) -> None:
    ERRORS.labels(code).inc()


def model_loaded(project: str, model_version: str, seconds: float, fit_seconds: float | None = None) -> None:
    MODEL_LOAD.observe(seconds)
    if fit_seconds is not None:  # fits run in workers, which serve no /metrics: the version carries it here
        FIT_SECONDS.labels(project).set(fit_seconds)
    previous = _loaded_versions.get(project)
    if previous is not None and previous != model_version:
        MODEL_VERSION.labels(project, previous).set(0)
    _loaded_versions[project] = model_version
    MODEL_VERSION.labels(project, model_version).set(1)
    number = 0
    if model_version.startswith("v") and model_version[1:].isdigit():
        number = int(model_version[1:])
    MODEL_VERSION_NUMBER.labels(project).set(number)


def catchup_checked(result) -> None:
    """Count one catch-up check (`lsml.catchup.CheckResult`); label values are bounded (outcomes, events)."""
    CATCHUP_CHECKS.labels(result.outcome).inc()
    for event, count in result.events.items():
        CATCHUP_RECOVERED.labels(event).inc(count)


def catchup_state(enabled: bool, ages: dict[str, float]) -> None:
    """Set the catch-up gauges at scrape time (ages from the state every process shares)."""
    CATCHUP_ENABLED.set(1 if enabled else 0)
    for project, age in ages.items():
        CATCHUP_AGE.labels(project).set(age)


def acceptance_state(per_project: dict[str, dict[str, dict]]) -> None:
    """Set the acceptance gauges at scrape time from `lsml.acceptance.report` of each project (bounded: at
    most `acceptance.MAX_VERSIONS` versions per project, four outcomes)."""
    regions: list[tuple[list[str], float]] = []
    annotations: list[tuple[list[str], float]] = []
    for project, versions in sorted(per_project.items()):
        for version, row in sorted(versions.items()):
            annotations.append(([project, version], row["annotations"]))
            regions.extend(([project, version, o], row[o]) for o in ("kept", "changed", "deleted", "added"))
    ACCEPTANCE.set_rows(regions)
    ACCEPTANCE_ANNOTATIONS.set_rows(annotations)


def model_evicted(project: str) -> None:
    """Count an eviction and stop reporting the project as loaded here.

    prometheus-client cannot remove a series in multi-process mode, so there
    the project's series drop to 0 (the gauge's "not loaded here").
    """
    MODEL_EVICTIONS.inc()
    previous = _loaded_versions.pop(project, None)
    if os.environ.get(setting_names.PROMETHEUS_MULTIPROC_DIR):
        if previous is not None:
            MODEL_VERSION.labels(project, previous).set(0)
            MODEL_VERSION_NUMBER.labels(project).set(0)
        return
    if previous is not None:
        MODEL_VERSION.remove(project, previous)
        MODEL_VERSION_NUMBER.remove(project)


def _registry():
    if os.environ.get(setting_names.PROMETHEUS_MULTIPROC_DIR):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        for snapshot in _SNAPSHOTS:  # read from the shared state at scrape time: no per-process files to merge
            registry.register(snapshot)
        return registry
    return REGISTRY


_request_counters: dict[tuple[str, str, int], Any] = {}
_request_histograms: dict[str, Any] = {}


def observe_request(method: str, rule: str | None, status: int, t0: float | None) -> None:
    """Count one answered request and time it from `t0` (`time.perf_counter`); labelled children are cached, as
    `.labels()` costs more than `.inc()`. Called after Flask's requests and `lsml.server.fast_predict`'s alike."""
    route, method = request_labels(method, rule, status)
    key = (route, method, status)
    counter = _request_counters.get(key)
    if counter is None:
        counter = _request_counters[key] = REQUESTS.labels(route, method, str(status))
    counter.inc()
    if t0 is not None:
        histogram = _request_histograms.get(route)
        if histogram is None:
            histogram = _request_histograms[route] = LATENCY.labels(route)
        histogram.observe(time.perf_counter() - t0)


def install(app: Flask) -> None:
    perf = time.perf_counter

    @app.before_request
    def _start_timer():
        request.environ[REQUEST_T0] = perf()

    @app.after_request
    def _observe(response):
        rule = request.url_rule
        observe_request(
            request.method,
            rule.rule if rule is not None else None,
            response.status_code,
            request.environ.get(REQUEST_T0),
        )
        return response


class VersionScores:
    """`lsml_model_version_score{project, version, metric}`: each kept version's held-out score, read from the
    store at scrape time (a collector, not a Gauge): its series are exactly the kept versions' figures, so a
    pruned version's disappear, in multi-process mode too, and their number is bounded by
    LSML_KEEP_VERSIONS x metrics per project. `served` is 1 for the served version."""

    def __init__(self, rows: list[tuple[str, str, str, float, bool]]) -> None:
        self.rows = rows

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(
            "lsml_model_version_score",
            "Held-out score of each kept model version (LSML_HOLDOUT_FRACTION), by project, version and metric",
            labels=["project", "version", "metric", "served"],
        )
        for project, version, metric, value, served in self.rows:
            family.add_metric([project, version, metric, "1" if served else "0"], value)
        yield family


def render(queue_stats: dict | None, version_scores: list[tuple[str, str, str, float, bool]] | None = None) -> Response:
    if queue_stats:
        QUEUE_DEPTH.set(queue_stats.get("queued", 0))
        QUEUE_RUNNING.set(queue_stats.get("running", 0))
        QUEUE_FAILED.set(queue_stats.get("failed", 0))
    body = generate_latest(_registry())
    if version_scores:
        scores = CollectorRegistry(auto_describe=False)
        scores.register(VersionScores(version_scores))
        body += generate_latest(scores)
    return Response(body, mimetype=CONTENT_TYPE_LATEST)
