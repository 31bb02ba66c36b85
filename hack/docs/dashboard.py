"""Writes charts/lsml-operator/dashboards/lsml.json, the Grafana dashboard the chart ships (monitoring.grafanaDashboard).

The panels and their PromQL are written here, readable, and the JSON is generated from them:
`python hack/docs/dashboard.py` rewrites it; tests/docs/test_dashboard.py fails when the committed JSON differs
from what this script writes, or when a query names a metric lsml does not register.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "charts" / "lsml-operator" / "dashboards" / "lsml.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'namespace=~"$namespace", mlbackend=~"$mlbackend"'  # labels the chart's PodMonitor/ServiceMonitor adds

# (title, unit, [(legend, PromQL)], width) - a row of the dashboard is 24 units wide.
PANELS: list[tuple[str, str, list[tuple[str, str]], int]] = [
    (
        "Requests per second by route",
        "reqps",
        [("{{route}} {{status}}", f"sum by (route, status) (rate(lsml_http_requests_total{{{SEL}}}[5m]))")],
        12,
    ),
    (
        "Request latency p95 by route",
        "s",
        [
            (
                "{{route}}",
                "histogram_quantile(0.95, sum by (route, le) "
                f"(rate(lsml_http_request_duration_seconds_bucket{{{SEL}}}[5m])))",
            )
        ],
        12,
    ),
    (
        "Errors per second by code (predict errors included)",
        "reqps",
        [("{{error}}", f"sum by (error) (rate(lsml_http_errors_total{{{SEL}}}[5m]))")],
        12,
    ),
    (
        "predict(): p95 duration and tasks per second",
        "s",
        [
            (
                "p95 predict()",
                f"histogram_quantile(0.95, sum by (le) (rate(lsml_predict_duration_seconds_bucket{{{SEL}}}[5m])))",
            ),
            ("tasks/s", f"sum(rate(lsml_predicted_tasks_total{{{SEL}}}[5m]))"),
            ("stuck threads", f"sum(lsml_predict_stuck_threads{{{SEL}}})"),
        ],
        12,
    ),
    (
        "Training queue",
        "short",
        [
            ("waiting", f"max by (mlbackend) (lsml_training_queue_depth{{{SEL}}})"),
            ("running", f"max by (mlbackend) (lsml_training_jobs_running{{{SEL}}})"),
            ("failed since start", f"max by (mlbackend) (lsml_training_jobs_failed{{{SEL}}})"),
        ],
        8,
    ),
    (
        "Training triggers accepted per minute",
        "short",
        [("{{event}}", f"sum by (event) (rate(lsml_training_submitted_total{{{SEL}}}[5m])) * 60")],
        8,
    ),
    (
        "Versions published (fits) per hour, by project",
        "short",
        [("project {{project}}", f"max by (project) (changes(lsml_model_version_number{{{SEL}}}[1h]))")],
        8,
    ),
    (
        "Served model version by project",
        "short",
        [("project {{project}}", f"max by (project) (lsml_model_version_number{{{SEL}}})")],
        8,
    ),
    (
        "Fit duration of the served version, by project",
        "s",
        [("project {{project}}", f"max by (project) (lsml_model_fit_seconds{{{SEL}}})")],
        8,
    ),
    (
        "Model reloads: builds per minute and p95 build time",
        "short",
        [
            ("builds/min", f"sum(rate(lsml_model_load_seconds_count{{{SEL}}}[5m])) * 60"),
            (
                "p95 build seconds",
                f"histogram_quantile(0.95, sum by (le) (rate(lsml_model_load_seconds_bucket{{{SEL}}}[5m])))",
            ),
            ("evictions/min", f"sum(rate(lsml_model_evictions_total{{{SEL}}}[5m])) * 60"),
        ],
        8,
    ),
    (
        "Pre-labelling progress by project",
        "percentunit",
        [
            (
                "project {{project}}",
                f"max by (project) (lsml_prelabel_tasks_done{{{SEL}}}) "
                f"/ max by (project) (lsml_prelabel_tasks_total{{{SEL}}} > 0)",
            )
        ],
        24,
    ),
    # the operator (lsml_operator_*: its own PodMonitor; no namespace/mlbackend filter, one operator serves all)
    (
        "Operator: reconciles per second by result, and p95 pass duration",
        "short",
        [
            ("{{result}}", "sum by (result) (rate(lsml_operator_reconciles_total[5m]))"),
            (
                "p95 seconds",
                "histogram_quantile(0.95, sum by (le) (rate(lsml_operator_reconcile_duration_seconds_bucket[5m])))",
            ),
        ],
        8,
    ),
    (
        "Operator: Label Studio registration failures per minute",
        "short",
        [("{{reason}}", "sum by (reason) (rate(lsml_operator_registration_failures_total[5m])) * 60")],
        8,
    ),
    (
        "Operator: MLBackends by Ready reason",
        "short",
        [("{{ready}} {{reason}}", "max by (ready, reason) (lsml_operator_mlbackends)")],
        8,
    ),
]


def panel(index: int, title: str, unit: str, targets: list[tuple[str, str]], width: int, x: int, y: int) -> dict:
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": title,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "targets": [
            {"refId": chr(ord("A") + n), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
            for n, (legend, expr) in enumerate(targets)
        ],
    }


def variable(name: str, label: str, query: str) -> dict:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": name},
        "definition": query,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
        "refresh": 2,
        "sort": 1,
    }


def dashboard() -> dict:
    panels, x, y = [], 0, 0
    for index, (title, unit, targets, width) in enumerate(PANELS):
        if x + width > 24:
            x, y = 0, y + 8
        panels.append(panel(index, title, unit, targets, width, x, y))
        x += width
    return {
        "uid": "lsml-backends",
        "title": "lsml: ML backends",
        "description": "Label Studio ML backends run by lsml (charts/lsml-operator; generated by hack/docs/dashboard.py)",
        "tags": ["lsml", "label-studio"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                },
                variable("namespace", "Namespace", "label_values(lsml_http_requests_total, namespace)"),
                variable(
                    "mlbackend",
                    "MLBackend",
                    'label_values(lsml_http_requests_total{namespace=~"$namespace"}, mlbackend)',
                ),
            ]
        },
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(render())
    print(OUT, file=sys.stderr)
