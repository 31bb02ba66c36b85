"""The worker Deployment: ``label-studio-ml worker /app`` taking training jobs from Redis.

It mounts the same model volume as the server: the worker publishes new versions there
and the server hot-reloads them (docs/architecture.md, Store).
"""

from __future__ import annotations

from typing import Any

from . import common as C
from . import labels as L

DEFAULT_COMMAND = ["label-studio-ml", "worker", "/app"]

# SIGTERM is RQ's warm shutdown: the worker finishes the fit it runs, then exits. A fit that needs longer
# than this is killed with the pod and runs again on the next worker (lsml.training.rq_worker,
# LSML_FIT_ATTEMPTS), so the wait only saves a short fit from starting over; the replacement pod
# meanwhile takes other jobs (a rollout surges it).
TERMINATION_GRACE_SECONDS = 300


def build(mlb: dict[str, Any], *, config_hash: str) -> dict[str, Any]:
    """Deployment for the RQ worker (no HTTP, so no probes; basic-auth credentials are not needed there)."""
    spec = C.Spec(mlb)
    worker = spec.worker
    container = C.runtime_container(
        spec,
        worker,
        name="worker",
        command=worker.get("command") or DEFAULT_COMMAND,
        args=worker.get("args"),
        include_basic_auth=False,
    )
    pod_spec = C.runtime_pod_spec(spec, worker, container)
    pod_spec["terminationGracePeriodSeconds"] = TERMINATION_GRACE_SECONDS
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": C.object_meta(mlb, L.worker_name(spec.name), L.WORKER),
        "spec": {
            "replicas": spec.worker_spec.replicas,
            "selector": {"matchLabels": L.selector_labels(spec.name, L.WORKER)},
            "template": {
                "metadata": {
                    "labels": L.labels(spec.name, L.WORKER),
                    "annotations": {C.CONFIG_HASH_ANNOTATION: config_hash},
                },
                "spec": pod_spec,
            },
        },
    }
