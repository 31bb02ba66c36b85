"""What the builders share: the spec read through its typed model, owner references, security contexts, the runtime's environment.

The API server applies the CRD's defaults, but builders re-apply the same defaults here so
they are total functions of whatever body they get (a unit test, an old object, a dry run).
Both come from one place: the typed model (lsml_operator.crd.model) that the CRD is generated from.
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from typing import Any, TypeVar

from lsml import setting_names

from .. import API_VERSION, KIND
from ..crd import model as M
from . import labels as L


def _default(model: type[M.KubeModel], field: str) -> Any:
    """A field's default as the model (and so the generated CRD) declares it."""
    return model.model_fields[field].default


DEFAULT_MODEL_DIR: str = _default(M.ModelSpec, "model_dir")
DEFAULT_PORT: int = _default(M.ServerSpec, "container_port")
DEFAULT_REDIS_IMAGE: str = _default(M.RedisSpec, "image")
DEFAULT_REDIS_SIZE: str = _default(M.RedisStorage, "size")
DEFAULT_IMAGE_PULL_POLICY: str = _default(M.MLBackendSpec, "image_pull_policy")
REDIS_PORT = 6379
RUNTIME_UID = 10001  # the runtime image's USER (Dockerfile)
REDIS_UID = 999
CONFIG_HASH_ANNOTATION = "lsml.dev/config-hash"
REDIS_PASSWORD_KEY = "password"  # key of the generated Redis auth Secret
# key of the Label Studio token Secret when apiTokenSecretRef names none (the CRD's default)
TOKEN_KEY_DEFAULT: str = _default(M.TokenSecretRef, "key")
REDIS_URL_KEY_DEFAULT: str = _default(M.RedisUrlSecretRef, "key")

_Section = TypeVar("_Section", bound=M.KubeModel)


class Spec:
    """Read-only view of an MLBackend's spec with the CRD's defaults filled in.

    The sections with defaults (model, server, worker, service, redis) are parsed by their typed
    models, one section at a time and only when read, so a partial body (a unit test, a dry run)
    still builds what it can; ``raw`` keeps the spec as given for what passes through untouched
    (env, tolerations, affinity) and for the config hash.
    """

    def __init__(self, mlb: dict[str, Any]) -> None:
        self.body = mlb
        self.metadata: dict[str, Any] = mlb.get("metadata") or {}
        self.raw: dict[str, Any] = mlb.get("spec") or {}
        self.name: str = self.metadata["name"]
        self.namespace: str = self.metadata.get("namespace") or "default"

    def section(self, key: str) -> dict[str, Any]:
        return self.raw.get(key) or {}

    def _typed(self, key: str, model: type[_Section]) -> _Section:
        return model.model_validate(self.section(key))

    @cached_property
    def model_spec(self) -> M.ModelSpec:
        return self._typed("model", M.ModelSpec)

    @cached_property
    def server_spec(self) -> M.ServerSpec:
        return self._typed("server", M.ServerSpec)

    @cached_property
    def worker_spec(self) -> M.WorkerSpec:
        return self._typed("worker", M.WorkerSpec)

    @cached_property
    def service_spec(self) -> M.ServiceSpec:
        return self._typed("service", M.ServiceSpec)

    @cached_property
    def redis_spec(self) -> M.RedisSpec | None:
        return None if self.raw.get("redis") is None else self._typed("redis", M.RedisSpec)

    @cached_property
    def hpa_spec(self) -> M.HpaSpec | None:
        return None if self.raw.get("hpa") is None else self._typed("hpa", M.HpaSpec)

    @cached_property
    def service_monitor_spec(self) -> M.ServiceMonitorSpec:
        """spec.monitoring.serviceMonitor with its defaults (enabled: false when spec.monitoring is absent)."""
        return self._typed("monitoring", M.MonitoringSpec).service_monitor

    @cached_property
    def label_studio_spec(self) -> M.LabelStudioSpec | None:
        return None if self.raw.get("labelStudio") is None else self._typed("labelStudio", M.LabelStudioSpec)

    @property
    def image(self) -> str:
        return str(self.raw["image"])

    @property
    def image_pull_policy(self) -> str:
        return str(self.raw.get("imagePullPolicy", DEFAULT_IMAGE_PULL_POLICY))

    @property
    def model(self) -> dict[str, Any]:
        return self.section("model")

    @property
    def model_dir(self) -> str:
        return self.model_spec.model_dir

    @property
    def server(self) -> dict[str, Any]:
        return self.section("server")

    @property
    def server_replicas(self) -> int:
        return self.server_spec.replicas

    @property
    def container_port(self) -> int:
        return self.server_spec.container_port

    @property
    def worker(self) -> dict[str, Any]:
        return self.section("worker")

    @property
    def worker_enabled(self) -> bool:
        return self.worker_spec.enabled

    @property
    def redis(self) -> dict[str, Any] | None:
        return self.raw.get("redis")

    @property
    def redis_managed(self) -> bool:
        return bool(self.redis_spec and self.redis_spec.managed)

    @property
    def redis_network_policy(self) -> bool:
        """A NetworkPolicy guards the managed Redis unless spec.redis.networkPolicy is false."""
        return self.redis_managed and self.redis_spec is not None and self.redis_spec.network_policy

    @property
    def storage(self) -> dict[str, Any] | None:
        return self.raw.get("storage")

    @property
    def service_port(self) -> int:
        return self.service_spec.port

    @property
    def service_type(self) -> str:
        return self.service_spec.type

    @property
    def label_studio(self) -> dict[str, Any] | None:
        return self.raw.get("labelStudio")

    @property
    def token_secret_ref(self) -> dict[str, str] | None:
        """``{"name", "key"}`` of the Label Studio token Secret (the key defaulted), None without spec.labelStudio."""
        ls = self.label_studio
        return None if ls is None else secret_ref(ls["apiTokenSecretRef"])

    @property
    def hpa(self) -> dict[str, Any] | None:
        return self.raw.get("hpa")

    @property
    def service_url(self) -> str:
        """In-cluster URL of the server Service (what status.url reports)."""
        return f"http://{L.service_name(self.name)}.{self.namespace}.svc:{self.service_port}"

    @property
    def backend_url(self) -> str:
        """URL Label Studio uses: labelStudio.backendURL when given (ingress, LS outside the cluster), else the Service URL."""
        ls = self.label_studio or {}
        return (ls.get("backendURL") or self.service_url).rstrip("/")


def secret_ref(ref: dict[str, Any]) -> dict[str, str]:
    """A token Secret reference (from the spec, or as recorded in status) with its key defaulted."""
    return {"name": str(ref["name"]), "key": str(ref.get("key") or TOKEN_KEY_DEFAULT)}


def owner_reference(mlb: dict[str, Any]) -> dict[str, Any]:
    """Controller owner reference: the garbage collector deletes every child with the MLBackend."""
    meta = mlb["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def object_meta(mlb: dict[str, Any], name: str, component: str) -> dict[str, Any]:
    """metadata for a child: stable name, the parent's namespace, labels, owner reference."""
    spec = Spec(mlb)
    return {
        "name": name,
        "namespace": spec.namespace,
        "labels": L.labels(spec.name, component),
        "ownerReferences": [owner_reference(mlb)],
    }


def pod_security_context(uid: int = RUNTIME_UID) -> dict[str, Any]:
    """Non-root pods with a fixed uid/gid; fsGroup makes the model volume writable for that uid."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """Restricted Pod Security Standard: no escalation, no capabilities, read-only root (writable paths are volumes)."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resources(section: dict[str, Any]) -> dict[str, Any]:
    """ResourceRequirements as given (GPU limits such as nvidia.com/gpu pass through untouched)."""
    res = section.get("resources") or {}
    return {k: dict(v) for k, v in res.items() if k in ("limits", "requests") and v}


def redis_password_env(spec: Spec, name: str = "REDIS_PASSWORD") -> dict[str, Any]:
    """The managed Redis' password as a secretKeyRef: the kubelet reads it, the pod spec never holds it."""
    secret = L.redis_auth_secret_name(spec.name)
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": REDIS_PASSWORD_KEY}}}


def redis_env(spec: Spec) -> list[dict[str, Any]]:
    """REDIS_URL (and, for the managed Redis, REDIS_PASSWORD before it).

    Managed: ``redis://:$(REDIS_PASSWORD)@<name>-redis.<ns>.svc:6379/0``; the kubelet expands
    ``$(REDIS_PASSWORD)`` (a variable defined earlier in the list) when it starts the container, so
    the runtime gets a complete URL while the pod spec shows only the reference. The generated
    password is hex, so it needs no URL escaping. External: the whole URL comes from its Secret.
    """
    if spec.redis is None:
        return []
    if spec.redis_managed:
        host = f"{L.redis_name(spec.name)}.{spec.namespace}.svc"
        return [
            redis_password_env(spec),
            {"name": setting_names.REDIS_URL, "value": f"redis://:$(REDIS_PASSWORD)@{host}:{REDIS_PORT}/0"},
        ]
    ref = spec.redis["external"]["urlSecretRef"]
    return [
        {
            "name": setting_names.REDIS_URL,
            "valueFrom": {"secretKeyRef": {"name": ref["name"], "key": ref.get("key", REDIS_URL_KEY_DEFAULT)}},
        }
    ]


def runtime_env(
    spec: Spec, *, include_basic_auth: bool, extra: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Environment of server and worker: the runtime's documented variables (docs/architecture.md).

    Secrets are referenced (secretKeyRef), never copied into the pod spec. ``spec.model.env``
    entries replace the operator's own by name (SSA's list-map on ``env`` rejects duplicates);
    ``extra`` (the server's serving knobs) comes after the shared ones.
    """
    env: list[dict[str, Any]] = [{"name": setting_names.MODEL_DIR, "value": spec.model_dir}]
    env.extend(redis_env(spec))
    ba = spec.raw.get("basicAuth")
    if ba and include_basic_auth:
        env.append(
            {
                "name": setting_names.BASIC_AUTH_USER,
                "valueFrom": {"secretKeyRef": {"name": ba["secretName"], "key": ba["usernameKey"]}},
            }
        )
        env.append(
            {
                "name": setting_names.BASIC_AUTH_PASS,
                "valueFrom": {"secretKeyRef": {"name": ba["secretName"], "key": ba["passwordKey"]}},
            }
        )
    ls, tok = spec.label_studio, spec.token_secret_ref
    if ls and tok:
        env.append({"name": setting_names.LABEL_STUDIO_URL, "value": ls["url"]})
        env.append({"name": setting_names.LABEL_STUDIO_API_KEY, "valueFrom": {"secretKeyRef": tok}})
    model = spec.model_spec
    if model.score_strategy:
        env.append({"name": setting_names.LSML_SCORE_STRATEGY, "value": model.score_strategy})
    pins = model.pinned_versions or {}
    if pins:  # server and worker: the server serves the pin, the worker's prune keeps it
        env.append(
            {"name": setting_names.LSML_PINNED_VERSIONS, "value": ",".join(f"{k}={v}" for k, v in sorted(pins.items()))}
        )
    if model.prelabel_on_publish:
        env.append({"name": setting_names.LSML_PRELABEL_ON_PUBLISH, "value": "true"})
    gate = model.quality_gate
    if gate is not None:  # the worker's run_training applies it; the server shows it in nothing but the env
        env.append({"name": setting_names.LSML_QUALITY_GATE, "value": f"{gate.metric}:{gate.tolerance:g}"})
    env.extend(dict(e) for e in extra or [])
    user = [dict(e) for e in spec.model.get("env") or []]
    user_names = {e["name"] for e in user}
    merged = [e for e in env if e["name"] not in user_names]
    dedup: dict[str, dict[str, Any]] = {}
    for e in user:  # the last definition of a name wins, kept at its first position
        dedup[e["name"]] = e
    merged.extend(dedup.values())
    return merged


def env_from(spec: Spec) -> list[dict[str, Any]]:
    """spec.model.envFrom plus the model ConfigMap (keys become variables)."""
    out = [dict(e) for e in spec.model.get("envFrom") or []]
    if spec.model_spec.config_map_name:
        out.append({"configMapRef": {"name": spec.model_spec.config_map_name}})
    return out


def runtime_volumes(spec: Spec) -> list[dict[str, Any]]:
    """/tmp as an emptyDir (the root filesystem is read-only) and the model volume (PVC, existing claim or emptyDir)."""
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    st = spec.storage
    if st and st.get("existingClaim"):
        volumes.append({"name": "models", "persistentVolumeClaim": {"claimName": st["existingClaim"]}})
    elif st:
        volumes.append({"name": "models", "persistentVolumeClaim": {"claimName": L.models_claim_name(spec.name)}})
    else:
        volumes.append({"name": "models", "emptyDir": {}})
    return volumes


def runtime_mounts(spec: Spec) -> list[dict[str, Any]]:
    return [{"name": "tmp", "mountPath": "/tmp"}, {"name": "models", "mountPath": spec.model_dir}]


def image_pull_secrets(spec: Spec) -> list[dict[str, str]]:
    return [{"name": n} for n in spec.raw.get("imagePullSecrets") or []]


def scheduling(section: dict[str, Any]) -> dict[str, Any]:
    """nodeSelector / tolerations / affinity, only the keys that are set (SSA then owns nothing it did not set)."""
    out: dict[str, Any] = {}
    if section.get("nodeSelector"):
        out["nodeSelector"] = dict(section["nodeSelector"])
    if section.get("tolerations"):
        out["tolerations"] = [dict(t) for t in section["tolerations"]]
    if section.get("affinity"):
        out["affinity"] = dict(section["affinity"])
    return out


def model_volume_affinity(spec: Spec) -> dict[str, Any] | None:
    """Required pod affinity that keeps server and worker pods on one node when they share a RWO volume.

    A ReadWriteOnce volume attaches to one node at a time: pods of the same MLBackend that land
    on another node would hang in ContainerCreating (Multi-Attach error). So unless the model
    volume is ReadWriteMany, every server and worker pod must share the node of the first one
    (the first pod may go anywhere: the scheduler lets a pod satisfy its own affinity term).
    None without storage or with ReadWriteMany, where pods may spread.
    """
    storage = spec.storage
    if not storage or "ReadWriteMany" in (storage.get("accessModes") or ()):
        return None
    return {
        "podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {
                        "matchExpressions": [
                            {"key": "app.kubernetes.io/name", "operator": "In", "values": [L.APP_NAME]},
                            {"key": "app.kubernetes.io/instance", "operator": "In", "values": [spec.name]},
                            {"key": "app.kubernetes.io/component", "operator": "In", "values": [L.SERVER, L.WORKER]},
                        ]
                    },
                    "topologyKey": "kubernetes.io/hostname",
                }
            ]
        }
    }


def runtime_container(
    spec: Spec,
    section: dict[str, Any],
    *,
    name: str,
    command: list[str],
    args: list[str] | None,
    include_basic_auth: bool,
    extra_env: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The runtime container of server and worker: image, env, model/tmp mounts, restricted security context.

    ``extra`` (ports, probes) is added as given; args, envFrom and resources only when set.
    """
    container: dict[str, Any] = {
        "name": name,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": list(command),
        "env": runtime_env(spec, include_basic_auth=include_basic_auth, extra=extra_env),
        "volumeMounts": runtime_mounts(spec),
        "securityContext": container_security_context(),
        **extra,
    }
    if args:
        container["args"] = list(args)
    ef = env_from(spec)
    if ef:
        container["envFrom"] = ef
    res = resources(section)
    if res:
        container["resources"] = res
    return container


def runtime_pod_spec(spec: Spec, section: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """Pod spec of server and worker: one container, the runtime volumes, no service links or API token."""
    pod_spec: dict[str, Any] = {
        "securityContext": pod_security_context(),
        "containers": [container],
        "volumes": runtime_volumes(spec),
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        **scheduling(section),
    }
    colocate = model_volume_affinity(spec)
    if colocate is not None and "affinity" not in pod_spec:  # a user's own affinity replaces ours
        pod_spec["affinity"] = colocate
    if spec.raw.get("serviceAccountName"):
        pod_spec["serviceAccountName"] = spec.raw["serviceAccountName"]
    pulls = image_pull_secrets(spec)
    if pulls:
        pod_spec["imagePullSecrets"] = pulls
    return pod_spec


def config_hash(mlb: dict[str, Any], configmap_data: dict[str, str] | None = None, redis_auth_version: str = "") -> str:
    """Hash of everything the pods read at start-up: the spec minus scaling fields, plus the model ConfigMap's data
    and the version of the managed Redis' auth Secret.

    Put on the pod templates as an annotation, so a ConfigMap edit or a new Redis password
    (invisible in the pod template itself) still rolls the Deployments; replica counts and
    Label Studio registration settings and spec.monitoring (read by Prometheus, not the pods) are excluded so
    scaling, re-registering or scraping never restarts pods.
    """
    spec = json.loads(json.dumps(mlb.get("spec") or {}))
    spec.get("server", {}).pop("replicas", None)
    spec.get("worker", {}).pop("replicas", None)
    spec.pop("hpa", None)
    spec.pop("monitoring", None)
    ls = spec.get("labelStudio")
    if ls:
        for k in ("projects", "title", "description", "interactive", "timeout", "backendURL"):
            ls.pop(k, None)
    inputs: dict[str, Any] = {"spec": spec, "configMap": configmap_data or {}}
    if redis_auth_version:
        inputs["redisAuth"] = redis_auth_version
    payload = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
