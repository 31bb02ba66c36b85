"""Shared helpers of the operator tests: loading examples and the CRD, building bodies."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CRD_PATH = REPO / "crds" / "mlbackend.yaml"
CHART = REPO / "charts" / "lsml-operator"
EXAMPLES = REPO / "examples"


#: Annotations spec.server.podAnnotations may not set (issue 22 item 11): the operator's own, and what
#: loosens the pod's sandbox. test_builders.py builds pods with them, test_cluster_crd.py sends them to the API server's CEL rule.
RESERVED_POD_ANNOTATIONS = {
    "lsml.dev/config-hash": "pinned",
    "lsml.dev/anything": "x",
    "sub.lsml.dev/anything": "x",
    "container.apparmor.security.beta.kubernetes.io/server": "unconfined",
    "seccomp.security.alpha.kubernetes.io/pod": "unconfined",
    "container.seccomp.security.alpha.kubernetes.io/server": "unconfined",
    "io.kubernetes.cri-o.userns-mode": "auto",
    "io.kubernetes.cri-o.Devices": "/dev/mem",
    "io.kubernetes.cri.untrusted-workload": "true",
    "io.containerd.runtime": "x",
    "io.katacontainers.config.hypervisor.path": "/tmp/x",
    "run.oci.keep_original_groups": "1",
}
#: Look-alikes that stay the user's.
FREE_POD_ANNOTATIONS = {
    "prometheus.io/scrape": "true",
    "notlsml.dev/x": "v",
    "lsml.dev.example.com/x": "v",
    "example.com/lsml.dev": "v",
    "cluster-autoscaler.kubernetes.io/safe-to-evict": "true",
}


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def example(name: str) -> dict[str, Any]:
    """The MLBackend document of examples/<name>."""
    return next(d for d in load_docs(EXAMPLES / name) if d["kind"] == "MLBackend")


def with_identity(
    mlb: dict[str, Any], namespace: str = "ns1", uid: str = "uid-1234", generation: int = 1
) -> dict[str, Any]:
    """A body as the API server would hand it to the operator (namespace, uid, generation set)."""
    body = copy.deepcopy(mlb)
    body["metadata"].update({"namespace": namespace, "uid": uid, "generation": generation})
    return body


def crd() -> dict[str, Any]:
    return yaml.safe_load(CRD_PATH.read_text())


def crd_schema() -> dict[str, Any]:
    return crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def structural_to_jsonschema(node: Any) -> Any:
    """OpenAPI v3 structural schema -> JSON Schema (drop the x-kubernetes-* keywords jsonschema does not know)."""
    if isinstance(node, dict):
        return {k: structural_to_jsonschema(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
    if isinstance(node, list):
        return [structural_to_jsonschema(v) for v in node]
    return node
