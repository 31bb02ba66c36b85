"""The MLBackend resource as typed models: the one source of its CRD schema, defaults and descriptions.

``hack/crd/generate.py`` writes ``crds/mlbackend.yaml`` and the chart's copy from these classes
(:mod:`lsml_operator.crd.schema` says how each Python construct maps to the OpenAPI schema). A
field's description is what ``kubectl explain`` and the docs site's reference show; its default is
what the API server fills in. CEL rules that span fields live in ``kube_schema`` on their class
(the API server enforces them; the operator relies on it and does not repeat them).

Adding a field: docs/architecture.md, "The MLBackend CRD".
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from .schema import Kube

Int32 = Annotated[int, Kube(format="int32")]
Int64 = Annotated[int, Kube(format="int64")]
Port = Annotated[int, Field(ge=1, le=65535)]
PRESERVE = Kube(**{"x-kubernetes-preserve-unknown-fields": True})
Object = Annotated[dict[str, Any], PRESERVE]  # a core/v1 object the operator passes through as given
HTTP_URL = r"^https?://[^\s]+$"
#: The name of an object the operator reads or mounts (Secret, ConfigMap, claim, StorageClass, ServiceAccount): a
#: DNS-1123 subdomain, as Kubernetes requires. Refused here because the operator joins such a name into an API path
#: with its own rights, where `../` would name an object of another namespace (kube.is_object_name checks again).
OBJECT_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SIZE = r"^[0-9]+(\.[0-9]+)?([KMGTPE]i?)?$"
QUANTITY = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
Quantity = Annotated[
    int | str,
    Kube(
        replace=True,
        anyOf=[{"type": "integer"}, {"type": "string"}],
        pattern=QUANTITY,
        **{"x-kubernetes-int-or-string": True},
    ),
]

# The pattern is lsml_operator.builders.pod_annotations.RESERVED_POD_ANNOTATION (test_crd.py checks they agree).
_RESERVED_POD_ANNOTATION = (
    "^(([^/]*[.])?lsml[.]dev/|container[.]apparmor[.]security[.]beta[.]kubernetes[.]io/|"
    "(container[.])?seccomp[.]security[.]alpha[.]kubernetes[.]io/|io[.]kubernetes[.]cri-o[.]|"
    "io[.]kubernetes[.]cri[.]|io[.]containerd[.]|io[.]katacontainers[.]|run[.]oci[.])"
)
_RESERVED_ANNOTATION_RULE = {
    "rule": f"self.all(k, !k.matches('{_RESERVED_POD_ANNOTATION}'))",
    "message": (
        "spec.server.podAnnotations may not set the operator's lsml.dev/* keys (such as lsml.dev/config-hash, which "
        "rolls the pods on a config or password change) nor annotations that change the pod's sandbox: AppArmor "
        "(container.apparmor.security.beta.kubernetes.io/*), seccomp (seccomp.security.alpha.kubernetes.io/*), "
        "container runtimes' (io.kubernetes.cri-o.*, io.kubernetes.cri.*, io.containerd.*, io.katacontainers.*, "
        "run.oci.*); pods always run with the operator's restricted security context"
    ),
    "messageExpression": (
        f"'annotation ' + self.filter(k, k.matches('{_RESERVED_POD_ANNOTATION}'))[0] + ' is reserved: lsml.dev/* are "
        "the operator\\'s own (lsml.dev/config-hash rolls the pods on a config or password change); AppArmor, "
        "seccomp and container-runtime annotations (io.kubernetes.cri-o.*, io.kubernetes.cri.*, io.containerd.*, "
        "io.katacontainers.*, run.oci.*) would change the pod\\'s sandbox: pods always run with the operator\\'s "
        "restricted security context'"
    ),
}

RESOURCES = "core/v1 ResourceRequirements (limits may name GPUs, e.g. nvidia.com/gpu)."
QUANTITIES = (
    "Resource quantities by resource name (cpu, memory, nvidia.com/gpu, ...), core/v1 Quantity strings or integers."
)


def cel(rule: str, message: str) -> dict[str, str]:
    """One ``x-kubernetes-validations`` entry: a CEL rule the API server checks, and what it says when it fails."""
    return {"rule": rule, "message": message}


class KubeModel(BaseModel):
    """Base of every part of the resource: camelCase names on the wire, snake_case in Python, read-only."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, protected_namespaces=(), frozen=True, extra="ignore"
    )
    kube_schema: ClassVar[dict[str, Any]] = {}


# --- spec.model ---------------------------------------------------------------------------------------------


class EnvVar(KubeModel):
    """A core/v1 EnvVar; only its name is checked, the rest (value, valueFrom) passes through."""

    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1, description="Variable name.")


class QualityGate(KubeModel):
    metric: str = Field(
        max_length=128,
        pattern="^[A-Za-z0-9_.-]+$",
        description="A score name of /versions, e.g. accuracy, macro_f1, span_f1, map50.",
    )
    tolerance: float = Field(
        0, ge=0, le=1, description="How much lower than the served version's score a new version may be."
    )


class ModelSpec(KubeModel):
    env: list[EnvVar] | None = Field(
        None,
        max_length=256,
        description="Extra environment variables (core/v1 EnvVar); they win over the operator's own by name.",
    )
    env_from: list[Object] | None = Field(None, max_length=32, description="core/v1 EnvFromSource entries.")
    config_map_name: str | None = Field(
        None,
        max_length=253,
        pattern=OBJECT_NAME,
        description="A ConfigMap whose keys become environment variables; a change of its data rolls the pods.",
    )
    model_dir: str = Field("/data/models", pattern="^/", description="MODEL_DIR, where the model volume is mounted.")
    score_strategy: Literal["confidence", "least_confidence", "margin", "entropy"] | None = Field(
        None, description="Active-learning score (LSML_SCORE_STRATEGY)."
    )
    pinned_versions: Annotated[
        dict[str, Annotated[str, Field(pattern="^v?[0-9]+$")]] | None,
        Kube(
            **{
                "x-kubernetes-validations": [
                    cel(
                        "self.all(k, k == '*' || k.matches('^[0-9]+$'))", "pinnedVersions keys must be project ids or *"
                    )
                ]
            }
        ),
    ] = Field(
        None,
        max_length=256,
        description=(
            'Model version served per Label Studio project id, "*" for every project (e.g. {"*": "v3", "5": "v2"}; '
            "LSML_PINNED_VERSIONS). Later fits publish new versions but do not replace a pinned one; a version no "
            "longer kept is not served (the newest is, with a warning in the server log)."
        ),
    )
    quality_gate: QualityGate | None = Field(
        None,
        description=(
            "Opt-in publish gate (LSML_QUALITY_GATE): a new model version becomes current only if its held-out "
            "score on `metric` is at least the served version's minus `tolerance`; otherwise it is kept as a "
            "candidate, not served (label-studio-ml activate serves it)."
        ),
    )
    prelabel_on_publish: bool | None = Field(
        None,
        description=(
            "Re-predict a project's unlabelled tasks in the background whenever a new version is published "
            "(LSML_PRELABEL_ON_PUBLISH; one job per project, coalesced)."
        ),
    )


# --- spec.server, spec.worker -------------------------------------------------------------------------------


class Resources(KubeModel):
    limits: dict[str, Quantity] | None = Field(None, description=QUANTITIES)
    requests: dict[str, Quantity] | None = Field(None, description=QUANTITIES)


class ServerSpec(KubeModel):
    replicas: Int32 = Field(
        1,
        ge=0,
        description="Server pods; kubectl scale mlb drives it (the scale subresource), an hpa overrides it.",
    )
    container_port: Port = Field(
        9090,
        description="Port gunicorn listens on in the server container (PORT); the probes and the Service target it.",
    )
    resources: Resources | None = Field(None, description=RESOURCES)
    node_selector: dict[str, str] | None = Field(None, description="core/v1 nodeSelector of the server pods.")
    tolerations: list[Object] | None = Field(
        None, max_length=32, description="core/v1 tolerations of the server pods (e.g. for GPU nodes)."
    )
    affinity: Object | None = Field(
        None,
        description=(
            "core/v1 affinity of the server pods; with a ReadWriteOnce model volume the operator adds a required pod "
            "affinity that keeps every pod on the volume's node."
        ),
    )
    pod_annotations: Annotated[
        dict[str, str] | None, Kube(**{"x-kubernetes-validations": [_RESERVED_ANNOTATION_RULE]})
    ] = Field(None, max_length=64, description="Extra annotations on the server pods (e.g. for a metrics scraper).")


class WorkerSpec(KubeModel):
    enabled: bool = Field(
        False, description="Run the worker Deployment <name>-worker: training and pre-labelling leave the server."
    )
    replicas: Int32 = Field(1, ge=0, description="Worker pods; each takes one job at a time from the Redis queue.")
    command: list[str] | None = Field(
        None, max_length=64, description="Worker command; default label-studio-ml worker /app."
    )
    args: list[str] | None = Field(None, max_length=128, description="Arguments of the worker command.")
    resources: Resources | None = Field(None, description=RESOURCES)
    node_selector: dict[str, str] | None = Field(
        None, description="core/v1 nodeSelector of the worker pods (e.g. GPU nodes for training)."
    )
    tolerations: list[Object] | None = Field(None, max_length=32, description="core/v1 tolerations of the worker pods.")
    affinity: Object | None = Field(
        None, description="core/v1 affinity of the worker pods (see server.affinity for the model volume's node)."
    )


# --- spec.redis, spec.storage -------------------------------------------------------------------------------


class RedisStorage(KubeModel):
    size: str = Field("1Gi", pattern=SIZE, description="Size of the Redis volume claim.")
    storage_class_name: str | None = Field(
        None,
        max_length=253,
        pattern=OBJECT_NAME,
        description="StorageClass of the Redis volume claim; default: the cluster's default StorageClass.",
    )


class RedisUrlSecretRef(KubeModel):
    name: str = Field(
        min_length=1, max_length=253, pattern=OBJECT_NAME, description="Secret name, in the MLBackend's namespace."
    )
    key: str = Field("url", description="Key of the Secret holding the URL.")


class ExternalRedis(KubeModel):
    url_secret_ref: RedisUrlSecretRef = Field(
        description=(
            "The Secret key holding the Redis URL (redis://[:password@]host:port/db); given to the pods as REDIS_URL "
            "through a secretKeyRef."
        )
    )


class RedisSpec(KubeModel):
    kube_schema = {
        "x-kubernetes-validations": [
            cel(
                "(has(self.managed) && self.managed) != has(self.external)",
                "spec.redis: set exactly one of managed: true or external.urlSecretRef",
            )
        ]
    }
    managed: bool | None = Field(
        None, description="true: the operator runs Redis as the StatefulSet <name>-redis with a generated password."
    )
    network_policy: bool = Field(
        True,
        description=(
            "Managed Redis only: a NetworkPolicy lets only this MLBackend's server and worker pods reach Redis "
            "(enforced where the network plugin supports NetworkPolicies). false opts out."
        ),
    )
    image: str = Field("redis:7.4-alpine", description="Image of the managed Redis.")
    storage: RedisStorage = Field(
        default_factory=RedisStorage, description="The managed Redis' own volume (AOF), a claim of the StatefulSet."
    )
    resources: Resources | None = Field(None, description=RESOURCES)
    external: ExternalRedis | None = Field(
        None, description="A Redis the operator does not run, reached through a URL kept in a Secret."
    )


class StorageSpec(KubeModel):
    kube_schema = {
        "x-kubernetes-validations": [
            cel(
                "has(self.existingClaim) != has(self.size)",
                "spec.storage: set exactly one of size (a new claim) or existingClaim",
            ),
            cel(
                "!has(self.existingClaim) || (!has(self.storageClassName) && !has(self.accessModes))",
                "spec.storage: storageClassName and accessModes apply to a new claim, not to existingClaim",
            ),
            cel(
                "!has(self.accessModes) || self.accessModes.all(m, m == 'ReadWriteOnce' || m == 'ReadWriteMany')",
                "spec.storage.accessModes: the server and worker pods share the model volume and the worker writes "
                "it, so use ReadWriteOnce (pods are kept on one node) or ReadWriteMany (pods may spread across nodes)",
            ),
        ]
    }
    size: str | None = Field(
        None,
        pattern=SIZE,
        description="Size of a new model volume claim <name>-models (one of size or existingClaim).",
    )
    storage_class_name: str | None = Field(
        None,
        max_length=253,
        pattern=OBJECT_NAME,
        description="StorageClass of the new claim; default: the cluster's default StorageClass.",
    )
    access_modes: list[Literal["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"]] | None = Field(
        None,
        min_length=1,
        max_length=4,
        description=(
            "ReadWriteOnce (default): the volume attaches to one node, so every server and worker pod of this "
            "MLBackend is scheduled onto the same node (required pod affinity). ReadWriteMany (with a storage class "
            "that supports it): pods may spread across nodes."
        ),
    )
    existing_claim: str | None = Field(
        None,
        min_length=1,
        max_length=253,
        pattern=OBJECT_NAME,
        description="A PersistentVolumeClaim to mount instead of creating one (one of size or existingClaim).",
    )


# --- spec.service, spec.basicAuth, spec.labelStudio, spec.hpa -----------------------------------------------


class ServiceSpec(KubeModel):
    port: Port = Field(9090, description="Service port (the Service URL in status.url uses it).")
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field("ClusterIP", description="Service type.")


class BasicAuth(KubeModel):
    kube_schema = {
        "x-kubernetes-validations": [
            cel(
                "has(self.usernameKey) && has(self.passwordKey) && self.usernameKey != self.passwordKey",
                "spec.basicAuth: name both usernameKey and passwordKey (two different keys of the Secret)",
            )
        ]
    }
    secret_name: str = Field(
        min_length=1,
        max_length=253,
        pattern=OBJECT_NAME,
        description="Secret in the MLBackend's namespace holding the user and password.",
    )
    # optional in the schema so that the CEL rule above, not a bare "required" error, says what is missing
    username_key: str | None = Field(
        None, min_length=1, description="Key of the Secret holding the user (BASIC_AUTH_USER)."
    )
    password_key: str | None = Field(
        None, min_length=1, description="Key of the Secret holding the password (BASIC_AUTH_PASS)."
    )


class TokenSecretRef(KubeModel):
    name: str = Field(
        min_length=1, max_length=253, pattern=OBJECT_NAME, description="Secret name, in the MLBackend's namespace."
    )
    key: str = Field("token", description="Key of the Secret holding the token.")


class LabelStudioSpec(KubeModel):
    url: str = Field(pattern=HTTP_URL, description="Label Studio's URL as the operator reaches it (http or https).")
    api_token_secret_ref: TokenSecretRef = Field(
        description="Legacy API token or personal access token (JWT refresh token)."
    )
    projects: Annotated[list[Annotated[int, Field(ge=1)]], Kube(**{"x-kubernetes-list-type": "set"})] = Field(
        min_length=1,
        max_length=100,
        description=(
            "Label Studio project ids to register the backend in; a project dropped from the list is deregistered."
        ),
    )
    title: str | None = Field(
        None,
        max_length=200,
        description='Title of the ML backend in Label Studio; default: "<name> (<namespace>)".',
    )
    description: str | None = Field(None, max_length=2000, description="Description of the ML backend in Label Studio.")
    interactive: bool = Field(
        False, description="Interactive pre-annotations (Label Studio calls predict while a person annotates)."
    )
    timeout: float = Field(100, ge=1, description="Seconds Label Studio waits for the backend.")
    backend_url: str | None = Field(
        None,
        alias="backendURL",
        pattern=HTTP_URL,
        description=(
            "URL Label Studio uses to reach the backend (ingress, or Label Studio outside the cluster); default the "
            "Service URL."
        ),
    )


class HpaSpec(KubeModel):
    kube_schema = {
        "x-kubernetes-validations": [
            cel(
                "!has(self.minReplicas) || self.minReplicas <= self.maxReplicas",
                "spec.hpa.minReplicas must be <= spec.hpa.maxReplicas",
            )
        ]
    }
    min_replicas: Int32 = Field(1, ge=1, description="Fewest server pods.")
    max_replicas: Int32 = Field(ge=1, description="Most server pods.")
    target_cpu_utilization_percentage: int = Field(
        80,
        ge=1,
        le=100,
        alias="targetCPUUtilizationPercentage",
        description=(
            "Average CPU use (percent of requests) the autoscaler aims at; set server.resources.requests.cpu."
        ),
    )


# --- spec.monitoring ---------------------------------------------------------------------------------------

# prometheus-operator's Duration (monitoring.coreos.com/v1): 30s, 1m30s, 500ms, ...
DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"


LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
_LABEL_KEYS_RULE = cel(
    "self.all(k, k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    "[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$'))",
    "spec.monitoring.serviceMonitor.labels: every key must be a Kubernetes label key ([prefix/]name)",
)


class ServiceMonitorSpec(KubeModel):
    enabled: bool = Field(
        False,
        description=(
            "Create the ServiceMonitor <name> (monitoring.coreos.com/v1, the Prometheus Operator's) scraping /metrics "
            "of the server Service's http port, with basicAuth's Secret when spec.basicAuth is set; false deletes it. "
            "Needs the Prometheus Operator's CRDs and the chart value monitoring.perMLBackend (condition "
            "MonitoringReady says when either is missing)."
        ),
    )
    interval: str | None = Field(
        None, max_length=32, pattern=DURATION, description="Scrape period, e.g. 30s; default: Prometheus' own."
    )
    scrape_timeout: str | None = Field(
        None,
        max_length=32,
        pattern=DURATION,
        description="Scrape timeout (at most the interval), e.g. 10s; default: Prometheus' own.",
    )
    labels: Annotated[
        dict[str, Annotated[str, Field(max_length=63, pattern=LABEL_VALUE)]] | None,
        Kube(**{"x-kubernetes-validations": [_LABEL_KEYS_RULE]}),
    ] = Field(
        None,
        max_length=32,
        description=(
            "Labels on the ServiceMonitor: what your Prometheus selects monitors by (kube-prometheus-stack: "
            "release: <its release name>); the operator's app.kubernetes.io/* labels win over these."
        ),
    )


class MonitoringSpec(KubeModel):
    service_monitor: ServiceMonitorSpec = Field(
        default_factory=ServiceMonitorSpec,
        description="A Prometheus Operator ServiceMonitor for this backend (off by default).",
    )


# --- spec ---------------------------------------------------------------------------------------------------


class MLBackendSpec(KubeModel):
    kube_schema = {
        "x-kubernetes-validations": [
            cel(
                "!has(self.worker) || !self.worker.enabled || has(self.redis)",
                "spec.worker.enabled requires spec.redis (managed: true or external.urlSecretRef): the worker takes "
                "training jobs from Redis",
            ),
            cel(
                "!has(self.worker) || !self.worker.enabled || has(self.storage)",
                "spec.worker.enabled requires spec.storage: the server and the worker share trained models through "
                "the model volume",
            ),
        ]
    }
    image: str = Field(min_length=1, description="The lsml runtime image (gunicorn serving _wsgi:app from /app).")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="Pull policy of the server and worker containers (core/v1 imagePullPolicy)."
    )
    image_pull_secrets: list[str] | None = Field(
        None, max_length=16, description="Names of Secrets used to pull the image."
    )
    command: list[str] | None = Field(
        None,
        max_length=64,
        description="Server command; default runs gunicorn with _wsgi:app in /app on the container port.",
    )
    args: list[str] | None = Field(
        None, max_length=128, description="Arguments of the server command (the container's args)."
    )
    service_account_name: str | None = Field(
        None,
        max_length=253,
        pattern=OBJECT_NAME,
        description="ServiceAccount of the server and worker pods; default: the namespace's default ServiceAccount.",
    )
    model: ModelSpec = Field(
        default_factory=ModelSpec, description="Model settings, given to server and worker as environment."
    )
    server: ServerSpec = Field(
        default_factory=ServerSpec,
        description="The model server: a Deployment <name>-server behind the Service <name>.",
    )
    worker: WorkerSpec = Field(
        default_factory=WorkerSpec,
        description="RQ training worker (label-studio-ml worker /app); needs redis and storage.",
    )
    redis: RedisSpec | None = Field(
        None,
        description=(
            "Either a managed Redis (StatefulSet, AOF on, persistent volume, a generated password in the Secret "
            "<name>-redis-auth) or an external URL from a Secret."
        ),
    )
    storage: StorageSpec | None = Field(
        None,
        description=(
            "Model volume shared by server and worker, mounted at model.modelDir. Without it models live in an "
            "emptyDir."
        ),
    )
    service: ServiceSpec = Field(
        default_factory=ServiceSpec, description="The Service <name> in front of the server pods."
    )
    basic_auth: BasicAuth | None = Field(
        None,
        description="HTTP Basic credentials for the backend, from a Secret (BASIC_AUTH_USER / BASIC_AUTH_PASS).",
    )
    label_studio: LabelStudioSpec | None = Field(
        None, description="Register the backend in these Label Studio projects once the server is available."
    )
    hpa: HpaSpec | None = Field(
        None, description="A HorizontalPodAutoscaler for the server; spec.server.replicas is then left to it."
    )
    monitoring: MonitoringSpec | None = Field(
        None,
        description=(
            "Prometheus scraping of this backend's /metrics through the Prometheus Operator (docs: Kubernetes, "
            "monitoring); changing it never restarts the pods."
        ),
    )


# --- status -------------------------------------------------------------------------------------------------


class Condition(KubeModel):
    type: str = Field(description="Condition type.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str | None = Field(
        None, description="CamelCase cause (e.g. ImagePullFailed); Ready's is the first failing condition's."
    )
    message: str | None = Field(None, description="What is not ready and why, in words (never a secret).")
    last_transition_time: Annotated[str | None, Kube(format="date-time")] = Field(
        None, description="When status last flipped."
    )
    observed_generation: Int64 | None = Field(None, description="The spec generation the condition describes.")


class RegisteredBackend(KubeModel):
    project: int | None = Field(None, description="Label Studio project id.")
    id: int | None = Field(None, description="Label Studio's ML backend id in that project.")
    url: str | None = Field(None, description="The URL registered.")
    model_version: str | None = Field(None, description="The model version Label Studio reports for this backend.")


class RecordedSecretRef(KubeModel):
    name: str | None = Field(None, description="Secret name.")
    key: str | None = Field(None, description="Key of the Secret.")


class LabelStudioStatus(KubeModel):
    backends: list[RegisteredBackend] | None = Field(
        None, description="One entry per project the backend is registered in."
    )
    registration_hash: str | None = Field(
        None,
        description=(
            "Fingerprint of the last successful registration (URLs, projects, title, options and the Secrets' "
            "resourceVersions, never the token): a change re-registers."
        ),
    )
    url: str | None = Field(
        None,
        description=(
            "Label Studio URL the backends are registered in (informational; deregistration uses the operator's own "
            "record, annotation lsml.dev/label-studio)."
        ),
    )
    api_token_secret_ref: RecordedSecretRef | None = Field(
        None,
        description=(
            "The token Secret used at registration (name and key only, never the token; informational like url)."
        ),
    )


class HeldCandidateStatus(KubeModel):
    version: str = Field(description="The newest version the quality gate kept as a candidate (not served).")
    metric: str | None = Field(None, description="The gate's metric.")
    score: float | None = Field(None, description="The candidate's held-out score on it (absent: not scored).")
    served_version: str | None = Field(None, description="The version it was compared with (served then).")
    served_score: float | None = Field(None, description="That version's score.")
    tolerance: float | None = Field(None, description="The gate's tolerance.")


class ServedModelStatus(KubeModel):
    project: str = Field(description="Label Studio project id, as the backend's model store files it.")
    version: str | None = Field(None, description="The model version the backend serves for the project.")
    scores: dict[str, float] | None = Field(
        None, description="Its held-out scores by metric (accuracy, macro_f1, span_f1, mean_iou, map50, ...)."
    )
    held_candidate: HeldCandidateStatus | None = Field(
        None,
        description=(
            "A newer version the quality gate kept from being served (a CandidateHeld event names it once), "
            "with what it was compared on."
        ),
    )


class MLBackendStatus(KubeModel):
    observed_generation: Int64 | None = Field(None, description="The spec generation the status describes.")
    conditions: Annotated[
        list[Condition] | None,
        Kube(**{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}),
    ] = Field(
        None,
        description=(
            "Ready, ServerAvailable, WorkerAvailable, RedisReady, LabelStudioRegistered, ChildrenOwned (only while a "
            "child's name is taken), MonitoringReady (only with spec.monitoring.serviceMonitor.enabled; not part of "
            "Ready): see the troubleshooting guide for their reasons."
        ),
    )
    url: str | None = Field(
        None, description="The URL Label Studio uses: labelStudio.backendURL, else the Service URL."
    )
    replicas: Int32 | None = Field(None, description="Server pods (the scale subresource reads it).")
    ready_replicas: Int32 | None = Field(None, description="Server pods that are ready.")
    selector: str | None = Field(
        None, description="Label selector of the server pods (the scale subresource and an HPA read it)."
    )
    model_version: str | None = Field(
        None,
        description=(
            "The model version Label Studio reports for the registered backend, re-read on each registration pass."
        ),
    )
    served: list[ServedModelStatus] | None = Field(
        None,
        max_length=20,
        description=(
            "Per project (at most 20, lowest ids first): the version the backend serves and its held-out scores, "
            "read from the backend's own /versions every LSML_OPERATOR_QUALITY_SECONDS while the server is "
            "available."
        ),
    )
    score: str | None = Field(
        None,
        description=(
            "The SCORE column: metric=value of the served version of the first project with scores (the quality "
            "gate's metric when it has it, else its first metric by name)."
        ),
    )
    config_hash: str | None = Field(
        None,
        description=(
            "Hash of the spec and model ConfigMap data rolled into the pods (annotation lsml.dev/config-hash)."
        ),
    )
    label_studio: LabelStudioStatus | None = Field(
        None,
        description=("Where the backend is registered: what deregistration needs after spec.labelStudio is removed."),
    )


# --- the resource -------------------------------------------------------------------------------------------

_NAME_RULE = cel(
    "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 40",
    "metadata.name must be a DNS-1035 label of at most 40 characters (child names such as <name>-redis-0 must "
    "stay valid)",
)


class MLBackend(KubeModel):
    kube_schema = {
        "description": ("A Label Studio ML backend (lsml runtime) with its optional worker, Redis and model storage."),
        "x-kubernetes-validations": [_NAME_RULE],
    }
    api_version: str | None = None
    kind: str | None = None
    metadata: dict[str, Any] | None = None
    spec: MLBackendSpec = Field(
        description=(
            "What the backend runs: its image, model settings, server, worker, Redis, storage, Service, auth, "
            "Label Studio registration and autoscaling."
        )
    )
    status: MLBackendStatus | None = Field(None, description="What the operator observed, written by it alone.")
