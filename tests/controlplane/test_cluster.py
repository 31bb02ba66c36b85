"""Proof that the test control plane is a real Kubernetes: controllers, scheduler,
kwok nodes, garbage collection, CRD validation, RBAC and ServiceAccount tokens.

These run against the local control plane (``k8s_cluster``), or against an
existing cluster with ``LSML_TEST_KUBECONFIG``.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.fixtures.kubernetes import KubernetesCluster, wait_for

pytestmark = pytest.mark.kubernetes

IMAGE = "registry.invalid/lsml/never-pulled:1"  # kwok fakes containers: nothing is pulled


@pytest.fixture
def api(k8s_cluster: KubernetesCluster):
    api_client = k8s_cluster.api_client()
    yield api_client
    api_client.close()


def _pod_template(labels: dict[str, str]) -> client.V1PodTemplateSpec:
    return client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels=labels),
        spec=client.V1PodSpec(containers=[client.V1Container(name="app", image=IMAGE)]),
    )


def _db_with_claim(storage_class: str | None) -> client.V1StatefulSet:
    """StatefulSet ``db`` (1 replica) whose claim template ``data`` asks 1Gi of ``storage_class`` (None: the default)."""
    labels = {"app": "db"}
    return client.V1StatefulSet(
        metadata=client.V1ObjectMeta(name="db"),
        spec=client.V1StatefulSetSpec(
            service_name="db",
            replicas=1,
            selector=client.V1LabelSelector(match_labels=labels),
            template=_pod_template(labels),
            volume_claim_templates=[
                client.V1PersistentVolumeClaim(
                    metadata=client.V1ObjectMeta(name="data"),
                    spec=client.V1PersistentVolumeClaimSpec(
                        access_modes=["ReadWriteOnce"],
                        storage_class_name=storage_class,
                        resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"}),
                    ),
                )
            ],
        ),
    )


def _missing(fn) -> bool:
    try:
        fn()
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def test_nodes_are_kwok_nodes_and_ready(k8s_cluster: KubernetesCluster, api) -> None:
    nodes = client.CoreV1Api(api).list_node().items
    ready = [n for n in nodes if any(c.type == "Ready" and c.status == "True" for c in (n.status.conditions or []))]
    assert ready, "no Ready node"
    if not k8s_cluster.external:
        assert all(n.metadata.annotations.get("kwok.x-k8s.io/node") == "fake" for n in ready)
        assert not any(n.spec.taints for n in ready)


def test_deployment_becomes_available_on_kwok_nodes(k8s_cluster: KubernetesCluster, api, k8s_namespace: str) -> None:
    apps = client.AppsV1Api(api)
    core = client.CoreV1Api(api)
    labels = {"app": "web"}
    apps.create_namespaced_deployment(
        k8s_namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1DeploymentSpec(
                replicas=2, selector=client.V1LabelSelector(match_labels=labels), template=_pod_template(labels)
            ),
        ),
    )

    def available():
        dep = apps.read_namespaced_deployment_status("web", k8s_namespace)
        conds = {c.type: c.status for c in (dep.status.conditions or [])}
        return dep.status.available_replicas == 2 and conds.get("Available") == "True"

    wait_for(available, timeout=90, message="Deployment web Available with 2 replicas")
    rs = apps.list_namespaced_replica_set(k8s_namespace, label_selector="app=web").items
    assert len(rs) == 1 and rs[0].metadata.owner_references[0].kind == "Deployment"
    pods = core.list_namespaced_pod(k8s_namespace, label_selector="app=web").items
    assert len(pods) == 2
    node_names = {n.metadata.name for n in core.list_node().items}
    for pod in pods:
        assert pod.spec.node_name in node_names  # bound by kube-scheduler
        assert pod.status.phase == "Running"  # moved by kwok's stages
        assert any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)

    # Deleting the Deployment garbage-collects its ReplicaSet and Pods.
    apps.delete_namespaced_deployment(
        "web", k8s_namespace, body=client.V1DeleteOptions(propagation_policy="Background")
    )
    wait_for(
        lambda: not apps.list_namespaced_replica_set(k8s_namespace, label_selector="app=web").items,
        timeout=60,
        message="ReplicaSet of deleted Deployment garbage-collected",
    )


def test_statefulset_gets_its_pvc(k8s_cluster: KubernetesCluster, api, k8s_namespace: str) -> None:
    apps = client.AppsV1Api(api)
    core = client.CoreV1Api(api)
    storage_class = f"manual-{uuid.uuid4().hex[:8]}"
    # A class no provisioner serves: a hostPath PV that the PV controller binds to the claim (never used for data).
    pv_name = f"pv-{k8s_namespace}"
    core.create_persistent_volume(
        client.V1PersistentVolume(
            metadata=client.V1ObjectMeta(name=pv_name),
            spec=client.V1PersistentVolumeSpec(
                capacity={"storage": "1Gi"},
                access_modes=["ReadWriteOnce"],
                storage_class_name=storage_class,
                host_path=client.V1HostPathVolumeSource(path=f"/tmp/lsml-never-used/{pv_name}"),
                persistent_volume_reclaim_policy="Delete",
            ),
        )
    )
    try:
        apps.create_namespaced_stateful_set(k8s_namespace, _db_with_claim(storage_class))
        pvc = wait_for(
            lambda: core.read_namespaced_persistent_volume_claim("data-db-0", k8s_namespace),
            timeout=60,
            message="PVC data-db-0 created by the StatefulSet controller",
        )
        assert pvc.spec.resources.requests["storage"] == "1Gi"
        wait_for(
            lambda: core.read_namespaced_persistent_volume_claim("data-db-0", k8s_namespace).status.phase == "Bound",
            timeout=60,
            message="PVC data-db-0 Bound to the hostPath PV",
        )
        wait_for(
            lambda: apps.read_namespaced_stateful_set_status("db", k8s_namespace).status.ready_replicas == 1,
            timeout=90,
            message="StatefulSet db with 1 ready replica",
        )
    finally:
        try:
            core.delete_persistent_volume(pv_name)
        except ApiException:
            pass


def test_deleting_owner_garbage_collects_dependents(api, k8s_namespace: str) -> None:
    core = client.CoreV1Api(api)
    owner = core.create_namespaced_config_map(
        k8s_namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"), data={"a": "1"})
    )
    ref = client.V1OwnerReference(api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid)
    for i in range(2):
        core.create_namespaced_config_map(
            k8s_namespace,
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name=f"dependent-{i}", owner_references=[ref]), data={"b": "2"}
            ),
        )
    keeper = core.create_namespaced_config_map(
        k8s_namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="unowned"), data={"c": "3"})
    )
    assert keeper.metadata.uid

    core.delete_namespaced_config_map("owner", k8s_namespace)
    for i in range(2):
        wait_for(
            lambda i=i: _missing(lambda: core.read_namespaced_config_map(f"dependent-{i}", k8s_namespace)),
            timeout=60,
            message=f"dependent-{i} garbage-collected",
        )
    assert core.read_namespaced_config_map("unowned", k8s_namespace).metadata.uid == keeper.metadata.uid


def test_crd_schema_rejects_invalid_object_with_apiserver_message(api) -> None:
    ext = client.ApiextensionsV1Api(api)
    custom = client.CustomObjectsApi(api)
    group = f"g{uuid.uuid4().hex[:8]}.lsml.test"
    name = f"widgets.{group}"
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["replicas"],
                "properties": {
                    "replicas": {"type": "integer", "minimum": 1},
                    "mode": {"type": "string", "enum": ["fast", "slow"]},
                },
            }
        },
    }
    ext.create_custom_resource_definition(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": name},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}],
            },
        }
    )
    try:

        def established():
            crd = ext.read_custom_resource_definition(name)
            return any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or []))

        wait_for(established, timeout=30, message=f"CRD {name} Established")

        def create(spec):
            return custom.create_namespaced_custom_object(
                group,
                "v1",
                "default",
                "widgets",
                {
                    "apiVersion": f"{group}/v1",
                    "kind": "Widget",
                    "metadata": {"name": f"w-{uuid.uuid4().hex[:6]}"},
                    "spec": spec,
                },
            )

        ok = wait_for(lambda: create({"replicas": 2, "mode": "fast"}), timeout=30, message="a valid Widget accepted")
        assert ok["spec"]["replicas"] == 2

        with pytest.raises(ApiException) as excinfo:
            create({"replicas": 0, "mode": "sideways"})
        assert excinfo.value.status == 422
        message = json.loads(excinfo.value.body)["message"]
        assert "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1" in message
        assert 'spec.mode: Unsupported value: "sideways"' in message
    finally:
        ext.delete_custom_resource_definition(name)


def test_rbac_and_serviceaccount_tokens(k8s_cluster: KubernetesCluster, api, k8s_namespace: str) -> None:
    core = client.CoreV1Api(api)
    rbac = client.RbacAuthorizationV1Api(api)
    sa = f"system:serviceaccount:{k8s_namespace}:default"
    deny = k8s_cluster.kubectl("auth", "can-i", "list", "pods", "-n", k8s_namespace, f"--as={sa}", check=False)
    assert deny.stdout.strip() == "no", deny.stdout + deny.stderr

    rbac.create_namespaced_role(
        k8s_namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="pod-reader"),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["get", "list"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        k8s_namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="pod-reader"),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="pod-reader"),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="default", namespace=k8s_namespace)],
        ),
    )
    allow = k8s_cluster.kubectl("auth", "can-i", "list", "pods", "-n", k8s_namespace, f"--as={sa}", check=False)
    assert allow.stdout.strip() == "yes", allow.stdout + allow.stderr

    # TokenRequest: a real signed token that the apiserver then authenticates.
    tr = core.create_namespaced_service_account_token(
        "default",
        k8s_namespace,
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)),
    )
    token = tr.status.token
    assert token.count(".") == 2
    conf = client.Configuration()
    conf.host = k8s_cluster.api_url
    conf.ssl_ca_cert = api.configuration.ssl_ca_cert
    conf.verify_ssl = api.configuration.verify_ssl
    conf.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(conf) as as_sa:
        review = client.AuthenticationV1Api(as_sa).create_self_subject_review(
            client.V1SelfSubjectReview(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview")
        )
        assert review.status.user_info.username == sa
        client.CoreV1Api(as_sa).list_namespaced_pod(k8s_namespace)  # allowed by the Role
        with pytest.raises(ApiException) as excinfo:
            client.CoreV1Api(as_sa).list_namespaced_secret(k8s_namespace)
        assert excinfo.value.status == 403


def test_kubectl_and_helm_against_the_cluster(
    k8s_cluster: KubernetesCluster, k8s_namespace: str, tmp_path: Path
) -> None:
    version = json.loads(k8s_cluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"].startswith("v1.")
    assert int(version["serverVersion"]["minor"].rstrip("+")) >= 25

    chart = tmp_path / "demo"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: demo\nversion: 0.1.0\nkubeVersion: '>=1.25.0-0'\n")
    (chart / "values.yaml").write_text("greeting: hello\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\n"
        "data:\n  greeting: {{ .Values.greeting | quote }}\n"
    )
    k8s_cluster.helm("install", "demo", str(chart), "-n", k8s_namespace, "--set", "greeting=hi", "--wait")
    got = json.loads(k8s_cluster.kubectl("get", "configmap", "demo-cm", "-n", k8s_namespace, "-o", "json").stdout)
    assert got["data"]["greeting"] == "hi"
    releases = json.loads(k8s_cluster.helm("list", "-n", k8s_namespace, "-o", "json").stdout)
    assert [r["name"] for r in releases] == ["demo"]
    k8s_cluster.helm("uninstall", "demo", "-n", k8s_namespace, "--wait")


def test_claims_of_the_default_class_bind_through_local_path_on_kwok_nodes(
    k8s_cluster: KubernetesCluster, api, k8s_namespace: str
) -> None:
    """As on kind: a claim naming no class gets ``standard`` and local-path-provisioner binds it for the pod."""
    apps = client.AppsV1Api(api)
    core = client.CoreV1Api(api)
    (default_class,) = [
        sc
        for sc in client.StorageV1Api(api).list_storage_class().items
        if (sc.metadata.annotations or {}).get("storageclass.kubernetes.io/is-default-class") == "true"
    ]
    assert (default_class.metadata.name, default_class.provisioner) == ("standard", "rancher.io/local-path")
    assert default_class.volume_binding_mode == "WaitForFirstConsumer"
    apps.create_namespaced_stateful_set(k8s_namespace, _db_with_claim(storage_class=None))
    wait_for(
        lambda: core.read_namespaced_persistent_volume_claim("data-db-0", k8s_namespace).status.phase == "Bound",
        timeout=90,
        message="PVC data-db-0 Bound by local-path-provisioner",
    )
    pvc = core.read_namespaced_persistent_volume_claim("data-db-0", k8s_namespace)
    assert pvc.spec.storage_class_name == "standard"
    pv = core.read_persistent_volume(pvc.spec.volume_name)
    assert pv.metadata.annotations["pv.kubernetes.io/provisioned-by"] == "rancher.io/local-path"
    # The volume is pinned to the node the scheduler chose for the pod.
    (term,) = pv.spec.node_affinity.required.node_selector_terms
    wait_for(
        lambda: apps.read_namespaced_stateful_set_status("db", k8s_namespace).status.ready_replicas == 1,
        timeout=90,
        message="StatefulSet db with 1 ready replica",
    )
    pod = core.read_namespaced_pod("db-0", k8s_namespace)
    assert term.match_expressions[0].values == [pod.spec.node_name]
