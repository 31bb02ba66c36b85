"""Is kopf's peering in place? Checked once before kopf starts, because kopf does not say.

With mandatory peering (lsml-operator's default, so that two replicas never both act) kopf
pauses every watch until it sees its peering object, and it logs nothing about it when the
peering CRD is not installed or the object does not exist: the operator authenticates, then
does nothing, forever. A process started by hand after ``kubectl apply -f crds/`` hits exactly
that (``crds/`` holds the MLBackend CRD only; the peering CRDs and objects come with the chart).
So ``main`` asks here first and exits with a message saying what to install, or to run
``--standalone`` when one replica is all there is. Falling back to standalone silently would be
unsafe: a second replica would do the same and both would act on every MLBackend.
"""

from __future__ import annotations

from collections.abc import Sequence

from .kube import Kube

GROUP_VERSION = "kopf.dev/v1"
CRDS_FILE = "charts/lsml-operator/crds/kopf-peering.yaml"


def _kind(clusterwide: bool) -> tuple[str, str]:
    """(kind, plural) of the peering object kopf uses in this mode."""
    return ("ClusterKopfPeering", "clusterkopfpeerings") if clusterwide else ("KopfPeering", "kopfpeerings")


def problem(kube: Kube, *, clusterwide: bool, namespaces: Sequence[str], name: str) -> str | None:
    """What is missing for peering ``name`` (a message that says how to fix it), or None when all is in place."""
    kind, plural = _kind(clusterwide)
    alternative = "or start lsml-operator with --standalone if only one replica runs"
    if not kube.serves(GROUP_VERSION, plural):
        return (
            f"peering is on (the default) but the CRD {plural}.kopf.dev is not installed, so kopf would wait "
            f"forever: install it with `kubectl apply -f {CRDS_FILE}` and create the {kind} {name!r}"
            + ("" if clusterwide else f" in namespace(s) {', '.join(namespaces)}")
            + f" (the Helm chart does both), {alternative}"
        )
    scopes: list[str | None] = [None] if clusterwide else list(namespaces)
    missing = [ns for ns in scopes if kube.get_custom(GROUP_VERSION, plural, ns, name) is None]
    if not missing:
        return None
    where = "" if clusterwide else f" in namespace(s) {', '.join(str(ns) for ns in missing)}"
    return (
        f"peering is on (the default) but the {kind} {name!r} does not exist{where}, so kopf would wait "
        f"forever: create it (apiVersion {GROUP_VERSION}, kind {kind}, metadata.name {name}; the Helm chart "
        f"does), pick another with --peering-name, {alternative}"
    )
