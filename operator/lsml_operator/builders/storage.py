"""The model PersistentVolumeClaim shared by server and worker (none for existingClaim or no storage)."""

from __future__ import annotations

from typing import Any

from . import common as C
from . import labels as L


def build(mlb: dict[str, Any]) -> dict[str, Any] | None:
    """A claim of spec.storage.size; None when the user brings a claim or wants no persistence.

    The claim carries the owner reference, so deleting the MLBackend deletes trained models:
    users who want to keep them use ``existingClaim``.
    """
    spec = C.Spec(mlb)
    st = spec.storage
    if not st or st.get("existingClaim"):
        return None
    claim: dict[str, Any] = {
        "accessModes": list(st.get("accessModes") or ["ReadWriteOnce"]),
        "resources": {"requests": {"storage": st["size"]}},
    }
    if st.get("storageClassName"):
        claim["storageClassName"] = st["storageClassName"]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": C.object_meta(mlb, L.models_claim_name(spec.name), L.MODELS),
        "spec": claim,
    }
