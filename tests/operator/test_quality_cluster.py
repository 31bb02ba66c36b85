"""The quality poll on the real control plane: ``lsml-operator`` (a process, the chart's RBAC) reads a real lsml
server's /versions with the MLBackend's Basic credentials and shows the served version's score in
``kubectl get mlb`` and status; a candidate the gate held becomes one CandidateHeld event.

The server runs on 127.0.0.1 in this test process (kwok pods run nothing), so the operator is restarted
with ``LSML_OPERATOR_BACKEND_URLS`` naming it for this one MLBackend: the Service's DNS name resolves only
inside a cluster. That setting is the override an operator outside the cluster uses; the other MLBackends of
the session keep their Service URLs. The versions are published into the server's store as a fit leaves them
(tests/fixtures/versions_backend.py), not trained.
"""

from __future__ import annotations

import base64
import copy
import json
import secrets

import pytest

from tests.fixtures.kubernetes import wait_for
from tests.fixtures.mlbackend import example
from tests.fixtures.versions_backend import VersionsBackend, hold, publish

from .cluster import WATCHED, apply_yaml, get_mlb, kubectl_json

pytestmark = pytest.mark.kubernetes
NS = WATCHED[1]
NAME = "quality"
PASSWORD = "pw-" + secrets.token_hex(12)


@pytest.fixture
def backend(tmp_path):
    with VersionsBackend(tmp_path / "models", "labelstudio", PASSWORD).running() as b:
        yield b


@pytest.fixture
def polling_operator(k8s_cluster, operator, backend):
    """The session's operator, restarted to poll every 2 s and to reach this MLBackend at ``backend.url``;
    started again with the session's settings afterwards."""
    operator.stop()
    operator.start(
        extra_env={
            "LSML_OPERATOR_QUALITY_SECONDS": "2",
            "LSML_OPERATOR_BACKEND_URLS": json.dumps({f"{NS}/{NAME}": backend.url}),
        }
    )
    yield operator
    k8s_cluster.kubectl("delete", "mlb", NAME, "-n", NS, "--ignore-not-found", "--timeout=60s", check=False)
    operator.stop()
    operator.start()


def _held_events(cluster) -> list[dict]:
    items = kubectl_json(cluster, "get", "events", "-n", NS, "--field-selector", f"involvedObject.name={NAME}")
    return [e for e in items["items"] if e.get("reason") == "CandidateHeld"]


def test_score_column_status_and_one_event_per_held_candidate(k8s_cluster, backend, polling_operator):
    publish(backend.store, "4", {"scores": {"accuracy": 0.9, "macro_f1": 0.8}})
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "quality-basic", "namespace": NS},
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in {"u": "labelstudio", "p": PASSWORD}.items()},
    }
    mlb = copy.deepcopy(example("mlbackend-minimal.yaml"))
    mlb["metadata"] = {"name": NAME, "namespace": NS}
    mlb["spec"]["basicAuth"] = {"secretName": "quality-basic", "usernameKey": "u", "passwordKey": "p"}
    apply_yaml(k8s_cluster, [secret, mlb], NS)

    got = wait_for(
        lambda: (m := get_mlb(k8s_cluster, NS, NAME)) and (m.get("status") or {}).get("score") and m,
        timeout=90,
        interval=1,
        message="status.score from the backend's /versions",
    )
    assert got["status"]["score"] == "accuracy=0.900"
    assert got["status"]["served"] == [{"project": "4", "version": "v1", "scores": {"accuracy": 0.9, "macro_f1": 0.8}}]
    table = k8s_cluster.kubectl("get", "mlb", NAME, "-n", NS).stdout.splitlines()
    assert "SCORE" in table[0].split() and "accuracy=0.900" in table[1].split(), table

    # unchanged between polls: no status write (the object's resourceVersion stays), however many polls
    version = got["metadata"]["resourceVersion"]
    seen = backend.polls
    wait_for(lambda: backend.polls >= seen + 3, timeout=30, message="three more polls")
    assert get_mlb(k8s_cluster, NS, NAME)["metadata"]["resourceVersion"] == version

    hold(backend.store, "4", 0.3, tolerance=0.05)
    events = wait_for(lambda: _held_events(k8s_cluster), timeout=30, interval=1, message="CandidateHeld event")
    assert events[0]["type"] == "Warning"
    assert events[0]["message"] == (
        "project 4: v2 kept as a candidate, not served: accuracy 0.3000 is below v1's 0.9000 minus tolerance 0.05 "
        "(label-studio-ml activate serves it)"
    )
    st = get_mlb(k8s_cluster, NS, NAME)["status"]
    assert st["score"] == "accuracy=0.900" and st["served"][0]["heldCandidate"]["version"] == "v2"
    seen = backend.polls
    wait_for(lambda: backend.polls >= seen + 3, timeout=30, message="three more polls")
    assert sum(e.get("count") or 1 for e in _held_events(k8s_cluster)) == 1, "once per candidate, not per poll"

    raw = json.dumps([get_mlb(k8s_cluster, NS, NAME), _held_events(k8s_cluster)]) + polling_operator.log()
    assert PASSWORD not in raw
