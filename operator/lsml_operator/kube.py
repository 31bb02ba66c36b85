"""The few Kubernetes API calls the operator makes, on one shared ``kubernetes.client.ApiClient``.

One generic server-side apply for every child kind (``PATCH`` with
``application/apply-patch+yaml``, field manager ``lsml-operator``, ``force=true``) instead of
one typed method per kind: the builders already produce plain dicts, and apply returns the
live object with its status, which is all the status computation needs.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from kubernetes import client, config

from . import FIELD_MANAGER, GROUP, PLURAL, VERSION, jsonio
from .crd.model import OBJECT_NAME
from .kube_errors import APIError, Conflict, Forbidden, Invalid, NotFound, api_error

__all__ = ["APIError", "Conflict", "Forbidden", "Invalid", "NotFound", "Kube", "new_api_client", "owned_by"]

PLURALS: dict[str, str] = {
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "Service": "services",
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "HorizontalPodAutoscaler": "horizontalpodautoscalers",
    "ConfigMap": "configmaps",
    "Secret": "secrets",
    "Pod": "pods",
    "NetworkPolicy": "networkpolicies",
    "ServiceMonitor": "servicemonitors",  # the Prometheus Operator's CRD: may not be installed (NotFound)
}
API_VERSIONS: dict[str, str] = {
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "Service": "v1",
    "PersistentVolumeClaim": "v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "ConfigMap": "v1",
    "Secret": "v1",
    "Pod": "v1",
    "NetworkPolicy": "networking.k8s.io/v1",
    "ServiceMonitor": "monitoring.coreos.com/v1",
}


def new_api_client(pool_size: int = 32) -> client.ApiClient:
    """In-cluster credentials when running in a pod, else $KUBECONFIG / ~/.kube/config."""
    try:
        config.load_incluster_config()
        cfg = client.Configuration.get_default_copy()
    except config.ConfigException:
        cfg = client.Configuration()
        config.load_kube_config(client_configuration=cfg)
    cfg.connection_pool_maxsize = pool_size
    return client.ApiClient(cfg)


#: A Kubernetes object name or namespace (DNS-1123 subdomain; every kind the operator touches uses it or a
#: narrower rule): the CRD's own pattern for the spec's names, so the two cannot drift apart.
_OBJECT_NAME = re.compile(OBJECT_NAME)


class NotAnObjectName(ValueError):
    """A namespace or name that `_path` refuses to join into an API path."""


def is_object_name(value: str) -> bool:
    return len(value) <= 253 and _OBJECT_NAME.fullmatch(value) is not None


def _path(api_version: str, plural: str, namespace: str, name: str | None = None, sub: str | None = None) -> str:
    """The API path of a collection or an object.

    Why the check: a name is joined into a URL path, and urllib3 resolves dot segments before sending, so a
    name such as `../../kube-system/secrets/x` (from a spec a user wrote) would read another namespace's
    object with the operator's own rights. A name that is not a Kubernetes object name names nothing."""
    for what, value in (("namespace", namespace), ("name", name)):
        if value is not None and not is_object_name(value):
            raise NotAnObjectName(f"{what} {value[:80]!r} is not a Kubernetes object name (a DNS-1123 subdomain)")
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    p = f"{base}/namespaces/{namespace}/{plural}"
    if name:
        p += f"/{name}"
    if sub:
        p += f"/{sub}"
    return p


#: A resourceVersion no object has (etcd's revisions of writes start at 2): the precondition of a create-only apply.
NO_OBJECT_VERSION = "1"
#: A LIST's items as metadata only (the API server's table of content negotiation), plain JSON from one that cannot.
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
NAMES_PAGE = 500


def owned_by(obj: dict[str, Any], owner_uid: str) -> bool:
    """Whether ``owner_uid`` is the controller owner of ``obj``: the only objects the operator may change."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == owner_uid and r.get("controller") for r in refs)


class Kube:
    """Thin wrapper: every method is one HTTP call; NotFound becomes None where absence is a normal answer.

    Errors are ``kube_errors.APIError`` subclasses, so callers catch what they mean (``Invalid``,
    ``Forbidden``) by type instead of comparing status numbers.
    """

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, Any]] | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> Any:
        """One request through the client's configuration (auth, TLS, pool); JSON in, JSON out.

        The body is serialized here, so every patch content type (apply, merge, JSON) is sent verbatim.
        """
        headers = {"Content-Type": content_type, "Accept": accept}
        # the REST layer JSON-encodes bodies of *json content types itself; others (apply+yaml) go verbatim (JSON is
        # YAML), encoded here: applies are most of the operator's writes
        payload = jsonio.dumps(body) if body is not None and "json" not in content_type else body
        m, url, hdrs, data, post = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params=headers,
            body=payload,
            auth_settings=["BearerToken"],
        )
        resp = self.api.call_api(m, url, header_params=hdrs, body=data, post_params=post, _request_timeout=60)
        resp.read()
        if not 200 <= resp.status <= 299:
            raise api_error(resp.status, resp.reason, (resp.data or b"").decode(errors="replace"))
        return jsonio.loads(resp.data) if resp.data else {}

    def apply(self, obj: dict[str, Any], *, only_if_absent: bool = False) -> dict[str, Any]:
        """Server-side apply: we own exactly the fields we set; a hand edit of them is overwritten (force).

        ``only_if_absent``: create the object, or raise ``Conflict`` when any object of its name exists (ours or
        not), in one atomic request. A resourceVersion in an apply is a precondition the object must meet
        (kubernetes/kubernetes#63104), and it is ignored on create; "1" is no object's version, since etcd
        gives its first write revision 2. Some releases refused the create of a Service carrying one
        (kubernetes/kubernetes#106745): a refusal sends the caller to its read-then-apply path, so it costs
        requests, never ownership. tests/operator/test_fingerprint_cluster.py holds it for every child kind. A check-then-write (GET, then apply) would cost a request more and
        leave a window in which an object created in between is taken over."""
        kind = obj["kind"]
        path = _path(obj["apiVersion"], PLURALS[kind], obj["metadata"]["namespace"], obj["metadata"]["name"])
        if only_if_absent:
            obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": NO_OBJECT_VERSION}}
        return self._call(
            "PATCH",
            path,
            body=obj,
            content_type="application/apply-patch+yaml",
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
        )

    def create_or_get(self, obj: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """(live object, created): create ``obj``, or return the existing one untouched (409).

        For children that must be written once and then kept (a generated password): apply would
        overwrite the existing value with a new one.
        """
        meta = obj["metadata"]
        kind = obj["kind"]
        try:
            return self._call("POST", _path(obj["apiVersion"], PLURALS[kind], meta["namespace"]), body=obj), True
        except Conflict:
            pass
        live = self.get(kind, meta["namespace"], meta["name"])
        if live is None:  # deleted between the two calls: the next reconcile creates it
            raise Conflict(409, f"{kind} {meta['namespace']}/{meta['name']} is being deleted")
        return live, False

    def _get_or_none(self, path: str) -> dict[str, Any] | None:
        try:
            return self._call("GET", path)
        except NotFound:
            return None

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get_or_none(_path(API_VERSIONS[kind], PLURALS[kind], namespace, name))

    def list(self, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        """The objects of a kind matching a label selector in one namespace (one LIST, no watch)."""
        got = self._call(
            "GET", _path(API_VERSIONS[kind], PLURALS[kind], namespace), query=[("labelSelector", selector)]
        )
        return list(got.get("items") or [])

    def names(self, kind: str, namespace: str, selector: str, *, page: int = NAMES_PAGE) -> set[str]:
        """The names of the objects of a kind matching a label selector in one namespace.

        Metadata only (``PartialObjectMetadataList``: no specs, no status) and ``page`` at a time, so that the
        audit of a namespace with a thousand MLBackends never holds a thousand bodies."""
        path = _path(API_VERSIONS[kind], PLURALS[kind], namespace)
        found: set[str] = set()
        token = ""
        while True:
            query: list[tuple[str, Any]] = [("labelSelector", selector), ("limit", page)]
            if token:
                query.append(("continue", token))
            got = self._call("GET", path, query=query, accept=METADATA_ONLY)
            found.update(str((item.get("metadata") or {}).get("name")) for item in got.get("items") or [])
            token = str((got.get("metadata") or {}).get("continue") or "")
            if not token:
                return found

    def delete_owned(self, kind: str, namespace: str, name: str, owner_uid: str) -> bool:
        """Delete a child only if this MLBackend controls it (never someone else's object of the same name)."""
        obj = self.get(kind, namespace, name)
        if obj is None:
            return False
        if not owned_by(obj, owner_uid):
            return False
        try:
            self._call(
                "DELETE",
                _path(API_VERSIONS[kind], PLURALS[kind], namespace, name),
                body={"propagationPolicy": "Background"},
            )
        except NotFound:
            pass  # gone meanwhile: what we wanted
        return True

    def delete_owned_or_labelled(self, kind: str, namespace: str, name: str, instance: str) -> bool:
        """Delete an object the StatefulSet controller made for us (labelled with our instance, no owner ref)."""
        obj = self.get(kind, namespace, name)
        labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
        if (
            obj is None
            or labels.get("app.kubernetes.io/instance") != instance
            or labels.get("app.kubernetes.io/managed-by") != FIELD_MANAGER
        ):
            return False
        try:
            self._call("DELETE", _path(API_VERSIONS[kind], PLURALS[kind], namespace, name))
        except NotFound:
            pass
        return True

    def secret_value(self, namespace: str, name: str, key: str) -> tuple[str, str]:
        """(value, resourceVersion) of one Secret key. Raises KeyError with a message naming the key, never the value."""
        try:
            sec = self.get("Secret", namespace, name)
        except NotAnObjectName as exc:  # reported as a Secret that cannot be had
            raise KeyError(f"Secret {exc}") from None
        except Forbidden:
            # RBAC does not let the operator read Secrets here (chart: rbac.secretNamespaces)
            raise KeyError(f"the operator may not read Secret {namespace}/{name} (RBAC)") from None
        if sec is None:
            raise KeyError(f"Secret {namespace}/{name} not found")
        data = sec.get("data") or {}
        if key not in data:
            raise KeyError(f"Secret {namespace}/{name} has no key {key!r}")
        return base64.b64decode(data[key]).decode(), str(sec["metadata"].get("resourceVersion", ""))

    def configmap_data(self, namespace: str, name: str) -> dict[str, str] | None:
        cm = self.get("ConfigMap", namespace, name)
        return None if cm is None else dict(cm.get("data") or {})

    def serves(self, group_version: str, plural: str) -> bool:
        """Whether the API server serves a resource (discovery of /apis/<group>/<version>): a CRD installed and established."""
        doc = self._get_or_none(f"/apis/{group_version}") or {}
        return any(r.get("name") == plural for r in doc.get("resources") or [])

    def get_custom(self, group_version: str, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """One custom object, namespaced or cluster-scoped (namespace None); None when absent."""
        where = f"/namespaces/{namespace}" if namespace else ""
        return self._get_or_none(f"/apis/{group_version}{where}/{plural}/{name}")

    def get_mlbackend(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get_custom(f"{GROUP}/{VERSION}", PLURAL, namespace, name)

    def annotate_mlbackend(self, namespace: str, name: str, annotations: dict[str, str]) -> dict[str, Any]:
        """Merge-patch annotations of an MLBackend (the operator's own records, e.g. lsml.dev/label-studio)."""
        return self._call(
            "PATCH",
            f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}",
            body={"metadata": {"annotations": annotations}},
            content_type="application/merge-patch+json",
        )

    def patch_mlbackend_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch the status subresource (conditions are replaced as a whole list)."""
        return self._call(
            "PATCH",
            f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}/status",
            body={"status": status},
            content_type="application/merge-patch+json",
        )
