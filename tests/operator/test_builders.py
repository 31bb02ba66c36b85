"""Builder unit tests: MLBackend body -> children, no cluster (pure functions)."""

from __future__ import annotations

import copy
from typing import Any

from lsml_operator.builders import common as C
from lsml_operator.builders import desired_children, hpa, redis, server_deployment, service, storage, worker_deployment
from lsml_operator.builders import labels as L
from tests.fixtures.mlbackend import FREE_POD_ANNOTATIONS, RESERVED_POD_ANNOTATIONS, crd_schema, example, with_identity


def by_kind(children: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["kind"], c["metadata"]["name"]): c for c in children}


def env_map(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def test_minimal_spec_builds_only_service_and_server_deployment():
    mlb = with_identity(example("mlbackend-minimal.yaml"))
    kids = by_kind(desired_children(mlb))
    assert set(kids) == {("Service", "text-classifier-minimal"), ("Deployment", "text-classifier-minimal-server")}
    dep = kids[("Deployment", "text-classifier-minimal-server")]
    assert dep["spec"]["replicas"] == 1
    pod = dep["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["models"] == {"name": "models", "emptyDir": {}}
    assert volumes["tmp"] == {"name": "tmp", "emptyDir": {}}
    container = pod["containers"][0]
    assert env_map(container)["MODEL_DIR"]["value"] == "/data/models"
    assert "REDIS_URL" not in env_map(container)
    assert container["command"] == ["gunicorn", "--config", "python:lsml.server.gunicorn_conf", "_wsgi:app"]
    assert env_map(container)["PORT"]["value"] == "9090"


def test_every_child_has_owner_reference_stable_name_and_standard_labels():
    mlb = with_identity(example("mlbackend-full.yaml"), namespace="team-a", uid="u-42")
    for child in desired_children(mlb, configmap_data={"A": "1"}):
        meta = child["metadata"]
        assert meta["namespace"] == "team-a"
        assert meta["name"].startswith("image-classifier")
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "lsml.dev/v1alpha1",
                "kind": "MLBackend",
                "name": "image-classifier",
                "uid": "u-42",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        lab = meta["labels"]
        assert lab["app.kubernetes.io/name"] == "lsml"
        assert lab["app.kubernetes.io/instance"] == "image-classifier"
        assert lab["app.kubernetes.io/managed-by"] == "lsml-operator"
        assert lab["app.kubernetes.io/part-of"] == "lsml"
        assert lab["app.kubernetes.io/component"] in {"server", "worker", "redis", "models"}


def test_full_spec_builds_every_child_kind():
    mlb = with_identity(example("mlbackend-full.yaml"))
    kinds = sorted((c["kind"], c["metadata"]["name"]) for c in desired_children(mlb))
    assert kinds == sorted(
        [
            ("PersistentVolumeClaim", "image-classifier-models"),
            ("Service", "image-classifier-redis"),
            ("StatefulSet", "image-classifier-redis"),
            ("Service", "image-classifier"),
            ("Deployment", "image-classifier-server"),
            ("Deployment", "image-classifier-worker"),
            ("HorizontalPodAutoscaler", "image-classifier-server"),
            ("NetworkPolicy", "image-classifier-redis"),
        ]
    )


def _assert_restricted(pod_spec: dict[str, Any]) -> None:
    psc = pod_spec["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] > 0
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    for c in pod_spec["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        assert "/tmp" in mounts or "/data" in mounts


def test_pods_are_restricted_non_root_read_only():
    mlb = with_identity(example("mlbackend-full.yaml"))
    for child in desired_children(mlb):
        if child["kind"] in ("Deployment", "StatefulSet"):
            _assert_restricted(child["spec"]["template"]["spec"])


def test_server_probes_use_unauthenticated_health_paths():
    mlb = with_identity(example("mlbackend-full.yaml"))
    c = server_deployment.build(mlb, config_hash="x")["spec"]["template"]["spec"]["containers"][0]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["ports"] == [{"name": "http", "containerPort": 9090, "protocol": "TCP"}]


def test_server_deployment_carries_gpu_limits_scheduling_and_annotations():
    mlb = with_identity(example("mlbackend-full.yaml"))
    dep = server_deployment.build(mlb, config_hash="abc")
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert c["resources"]["requests"] == {"cpu": "1", "memory": "2Gi"}
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert "podAntiAffinity" in pod["affinity"]
    ann = dep["spec"]["template"]["metadata"]["annotations"]
    assert ann[C.CONFIG_HASH_ANNOTATION] == "abc"
    assert ann["prometheus.io/scrape"] == "true"
    # an HPA owns the replica count: the Deployment must not set it or the two would fight
    assert "replicas" not in dep["spec"]


def test_runtime_env_references_secrets_and_never_copies_values():
    mlb = with_identity(example("mlbackend-full.yaml"))
    c = server_deployment.build(mlb, config_hash="x")["spec"]["template"]["spec"]["containers"][0]
    env = env_map(c)
    assert env["BASIC_AUTH_USER"] == {
        "name": "BASIC_AUTH_USER",
        "valueFrom": {"secretKeyRef": {"name": "image-classifier-basic-auth", "key": "username"}},
    }
    assert env["BASIC_AUTH_PASS"]["valueFrom"]["secretKeyRef"] == {
        "name": "image-classifier-basic-auth",
        "key": "password",
    }
    assert env["LABEL_STUDIO_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "label-studio-token", "key": "token"}
    assert env["LABEL_STUDIO_URL"]["value"] == "https://label-studio.example.com"
    assert env["LSML_SCORE_STRATEGY"]["value"] == "entropy"
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "image-classifier-redis-auth",
        "key": "password",
    }
    assert env["REDIS_URL"]["value"] == "redis://:$(REDIS_PASSWORD)@image-classifier-redis.ns1.svc:6379/0"
    assert env["LOG_LEVEL"]["value"] == "DEBUG"
    assert {"configMapRef": {"name": "image-classifier-config"}} in c["envFrom"]
    assert all("value" not in e or "replace-me" not in e["value"] for e in c["env"])


def test_user_env_overrides_operator_env_by_name_without_duplicates():
    mlb = with_identity(example("mlbackend-minimal.yaml"))
    mlb["spec"]["model"] = {
        "env": [{"name": "MODEL_DIR", "value": "/elsewhere"}, {"name": "X", "value": "1"}, {"name": "X", "value": "2"}]
    }
    c = server_deployment.build(mlb, config_hash="x")["spec"]["template"]["spec"]["containers"][0]
    names = [e["name"] for e in c["env"]]
    assert len(names) == len(set(names))
    assert env_map(c)["MODEL_DIR"]["value"] == "/elsewhere"
    assert env_map(c)["X"]["value"] == "2"


def test_worker_shares_model_claim_and_redis_with_server():
    mlb = with_identity(example("mlbackend.yaml"))
    dep = worker_deployment.build(mlb, config_hash="h")
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["command"] == ["label-studio-ml", "worker", "/app"]
    assert {"name": "models", "persistentVolumeClaim": {"claimName": "text-classifier-models"}} in pod["volumes"]
    assert env_map(c)["REDIS_URL"]["value"].startswith("redis://:$(REDIS_PASSWORD)@text-classifier-redis.")
    assert "BASIC_AUTH_PASS" not in env_map(c)
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "worker"
    server_pod = server_deployment.build(mlb, config_hash="h")["spec"]["template"]["spec"]
    assert {"name": "models", "persistentVolumeClaim": {"claimName": "text-classifier-models"}} in server_pod["volumes"]


def test_managed_redis_is_a_persistent_aof_statefulset_with_headless_service():
    mlb = with_identity(example("mlbackend.yaml"))
    sts = redis.build_statefulset(mlb)
    assert sts["spec"]["serviceName"] == "text-classifier-redis"
    assert sts["spec"]["replicas"] == 1
    cmd = sts["spec"]["template"]["spec"]["containers"][0]["command"]
    assert cmd[:2] == ["sh", "-c"] and "--appendonly yes" in cmd[2]
    vct = sts["spec"]["volumeClaimTemplates"][0]
    assert vct["metadata"]["name"] == "data" and vct["spec"]["resources"]["requests"]["storage"] == "1Gi"
    # kept when the StatefulSet alone is deleted (the operator recreates it); deleted with the MLBackend
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
    assert redis.redis_claim_name("text-classifier") == "data-text-classifier-redis-0"
    svc = redis.build_service(mlb)
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["selector"] == sts["spec"]["selector"]["matchLabels"]


def test_external_redis_url_comes_from_secret():
    mlb = with_identity(example("mlbackend.yaml"))
    mlb["spec"]["redis"] = {"external": {"urlSecretRef": {"name": "my-redis"}}}
    kids = by_kind(desired_children(mlb))
    assert ("StatefulSet", "text-classifier-redis") not in kids
    c = kids[("Deployment", "text-classifier-worker")]["spec"]["template"]["spec"]["containers"][0]
    assert env_map(c)["REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "my-redis", "key": "url"}


def test_storage_claim_and_existing_claim():
    mlb = with_identity(example("mlbackend-full.yaml"))
    pvc = storage.build(mlb)
    assert pvc["spec"] == {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}
    mlb["spec"]["storage"] = {"existingClaim": "shared-models"}
    assert storage.build(mlb) is None
    pod = server_deployment.build(mlb, config_hash="x")["spec"]["template"]["spec"]
    assert {"name": "models", "persistentVolumeClaim": {"claimName": "shared-models"}} in pod["volumes"]


def test_service_selects_server_pods_on_named_port():
    mlb = with_identity(example("mlbackend-full.yaml"))
    svc = service.build(mlb)
    dep = server_deployment.build(mlb, config_hash="x")
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert svc["spec"]["ports"] == [{"name": "http", "port": 9090, "targetPort": "http", "protocol": "TCP"}]
    assert svc["spec"]["type"] == "ClusterIP"


def test_hpa_targets_server_deployment():
    mlb = with_identity(example("mlbackend-full.yaml"))
    h = hpa.build(mlb)
    assert h["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "image-classifier-server",
    }
    assert (h["spec"]["minReplicas"], h["spec"]["maxReplicas"]) == (2, 6)
    assert h["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    del mlb["spec"]["hpa"]
    assert hpa.build(mlb) is None
    assert server_deployment.build(mlb, config_hash="x")["spec"]["replicas"] == 2


def test_config_hash_rolls_on_pod_settings_and_configmap_not_on_scaling():
    mlb = with_identity(example("mlbackend-full.yaml"))
    base = C.config_hash(mlb, {"A": "1"})
    assert base == C.config_hash(copy.deepcopy(mlb), {"A": "1"})
    assert C.config_hash(mlb, {"A": "2"}) != base
    changed = copy.deepcopy(mlb)
    changed["spec"]["image"] = "lsml/runtime:v2"
    assert C.config_hash(changed, {"A": "1"}) != base
    scaled = copy.deepcopy(mlb)
    scaled["spec"]["server"]["replicas"] = 5
    scaled["spec"]["labelStudio"]["projects"] = [3]
    assert C.config_hash(scaled, {"A": "1"}) == base


def test_selector_string_matches_deployment_selector():
    mlb = with_identity(example("mlbackend-minimal.yaml"))
    sel = server_deployment.build(mlb, config_hash="x")["spec"]["selector"]["matchLabels"]
    assert L.selector_string("text-classifier-minimal") == ",".join(f"{k}={v}" for k, v in sel.items())


def test_builder_defaults_equal_crd_defaults():
    """The builders fill in defaults themselves; they must be the CRD's, or behaviour would depend on who defaulted."""
    spec = crd_schema()["properties"]["spec"]["properties"]
    assert spec["model"]["properties"]["modelDir"]["default"] == C.DEFAULT_MODEL_DIR
    assert spec["server"]["properties"]["containerPort"]["default"] == C.DEFAULT_PORT
    assert spec["server"]["properties"]["replicas"]["default"] == 1
    assert spec["service"]["properties"]["port"]["default"] == C.DEFAULT_PORT
    assert spec["service"]["properties"]["type"]["default"] == "ClusterIP"
    assert spec["redis"]["properties"]["image"]["default"] == C.DEFAULT_REDIS_IMAGE
    assert spec["redis"]["properties"]["networkPolicy"]["default"] is True
    assert C.Spec(with_identity(example("mlbackend.yaml"))).redis_network_policy is True
    assert spec["redis"]["properties"]["storage"]["properties"]["size"]["default"] == C.DEFAULT_REDIS_SIZE
    assert spec["imagePullPolicy"]["default"] == "IfNotPresent"
    assert spec["hpa"]["properties"]["targetCPUUtilizationPercentage"]["default"] == 80
    assert spec["labelStudio"]["properties"]["apiTokenSecretRef"]["properties"]["key"]["default"] == C.TOKEN_KEY_DEFAULT


def test_pods_sharing_a_read_write_once_volume_are_kept_on_one_node():
    """RWO (the default) attaches to one node: server and worker pods require each other's node."""
    mlb = with_identity(example("mlbackend.yaml"))
    for pod in (
        server_deployment.build(mlb, config_hash="h")["spec"]["template"]["spec"],
        worker_deployment.build(mlb, config_hash="h")["spec"]["template"]["spec"],
    ):
        (term,) = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert term["topologyKey"] == "kubernetes.io/hostname"
        selected = {e["key"]: e["values"] for e in term["labelSelector"]["matchExpressions"]}
        assert selected["app.kubernetes.io/instance"] == [mlb["metadata"]["name"]]
        assert sorted(selected["app.kubernetes.io/component"]) == [L.SERVER, L.WORKER]
        # the server and worker pod templates carry the labels the term selects, so they attract each other
        assert set(selected) <= set(L.labels(mlb["metadata"]["name"], L.SERVER))


def test_read_write_many_storage_lets_pods_spread_and_user_affinity_wins():
    mlb = with_identity(example("mlbackend.yaml"))
    rwx = copy.deepcopy(mlb)
    rwx["spec"]["storage"]["accessModes"] = ["ReadWriteMany"]
    assert "affinity" not in server_deployment.build(rwx, config_hash="h")["spec"]["template"]["spec"]
    own = copy.deepcopy(mlb)
    own["spec"]["server"]["affinity"] = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}}
    pod = server_deployment.build(own, config_hash="h")["spec"]["template"]["spec"]
    assert pod["affinity"] == own["spec"]["server"]["affinity"]
    no_storage = copy.deepcopy(mlb)
    no_storage["spec"].pop("storage")
    no_storage["spec"].pop("worker")
    assert "affinity" not in server_deployment.build(no_storage, config_hash="h")["spec"]["template"]["spec"]


def test_server_pods_drain_before_they_stop():
    """Endpoint removal races SIGTERM: a pre-stop pause keeps serving until the Service has moved on."""
    pod = server_deployment.build(with_identity(example("mlbackend.yaml")), config_hash="h")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["lifecycle"]["preStop"]["sleep"]["seconds"] == server_deployment.PRE_STOP_SLEEP_SECONDS
    assert pod["terminationGracePeriodSeconds"] > server_deployment.PRE_STOP_SLEEP_SECONDS + 30  # + gunicorn's graceful


def test_worker_pods_get_time_to_finish_a_short_fit_before_they_are_killed():
    """SIGTERM lets the running fit finish (RQ warm shutdown) within the grace period; a longer one runs again."""
    pod = worker_deployment.build(with_identity(example("mlbackend.yaml")), config_hash="h")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == worker_deployment.TERMINATION_GRACE_SECONDS >= 60


def test_pinned_versions_and_prelabel_on_publish_reach_server_and_worker_env():
    mlb = with_identity(example("mlbackend-full.yaml"))
    mlb["spec"]["model"]["pinnedVersions"] = {"5": "v2", "*": "v3"}
    mlb["spec"]["model"]["prelabelOnPublish"] = True
    server = env_map(server_deployment.build(mlb, config_hash="x")["spec"]["template"]["spec"]["containers"][0])
    worker = env_map(worker_deployment.build(mlb, config_hash="x")["spec"]["template"]["spec"]["containers"][0])
    for env in (server, worker):  # the server serves the pin; the worker's prune keeps it, re-predicts on publish
        assert env["LSML_PINNED_VERSIONS"]["value"] == "*=v3,5=v2"
        assert env["LSML_PRELABEL_ON_PUBLISH"]["value"] == "true"
    from lsml.settings import Settings

    parsed = Settings.from_env(env={"LSML_PINNED_VERSIONS": server["LSML_PINNED_VERSIONS"]["value"]})
    assert (parsed.pinned_version("5"), parsed.pinned_version("9")) == ("v2", "v3")  # what the runtime reads
    plain = env_map(
        server_deployment.build(with_identity(example("mlbackend-minimal.yaml")), config_hash="x")["spec"]["template"][
            "spec"
        ]["containers"][0]
    )
    assert "LSML_PINNED_VERSIONS" not in plain and "LSML_PRELABEL_ON_PUBLISH" not in plain


def test_pod_annotations_never_override_the_operators_own_or_loosen_the_sandbox():
    mlb = with_identity(example("mlbackend-full.yaml"))
    mlb["spec"]["server"]["podAnnotations"] = {**RESERVED_POD_ANNOTATIONS, **FREE_POD_ANNOTATIONS}
    ann = server_deployment.build(mlb, config_hash="abc")["spec"]["template"]["metadata"]["annotations"]
    assert ann[C.CONFIG_HASH_ANNOTATION] == "abc", "a spec pinned the config hash: pods would stop rolling"
    assert ann == {C.CONFIG_HASH_ANNOTATION: "abc", **FREE_POD_ANNOTATIONS}


def test_quality_gate_reaches_the_env_as_the_runtime_reads_it():
    mlb = with_identity(example("mlbackend-full.yaml"))
    mlb["spec"]["model"]["qualityGate"] = {"metric": "accuracy", "tolerance": 0.02}
    worker = env_map(worker_deployment.build(mlb, config_hash="x")["spec"]["template"]["spec"]["containers"][0])
    assert worker["LSML_QUALITY_GATE"]["value"] == "accuracy:0.02"
    from lsml.evaluation.gate import QualityGate
    from lsml.settings import Settings

    parsed = QualityGate.parse(Settings.from_env(env={"LSML_QUALITY_GATE": "accuracy:0.02"}).quality_gate)
    assert parsed == QualityGate("accuracy", 0.02)
    mlb["spec"]["model"]["qualityGate"] = {"metric": "map50"}
    worker = env_map(worker_deployment.build(mlb, config_hash="x")["spec"]["template"]["spec"]["containers"][0])
    assert worker["LSML_QUALITY_GATE"]["value"] == "map50:0"
    plain = env_map(
        worker_deployment.build(with_identity(example("mlbackend-minimal.yaml")), config_hash="x")["spec"]["template"][
            "spec"
        ]["containers"][0]
    )
    assert "LSML_QUALITY_GATE" not in plain
