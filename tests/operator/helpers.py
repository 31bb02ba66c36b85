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
