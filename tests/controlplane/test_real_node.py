"""Proof that the harness's real node runs real containers, with the network a cluster gives them.

Each test runs lsml's own base image (made by hack/images/build, imported into
the node's containerd) on the real node of ``real_node_cluster``: Services
through kube-proxy from the host and from pods, cluster DNS from CoreDNS, the
apiserver from a pod with its ServiceAccount token, and a PersistentVolumeClaim
bound by local-path-provisioner with the data on the host's disk. That the
node leaves nothing behind is checked by the fixture's teardown.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from tests.fixtures.kubernetes import KubernetesCluster, realnode, wait_for

pytestmark = [pytest.mark.kubernetes, pytest.mark.realnode]


@pytest.fixture
def ns(real_node_cluster: KubernetesCluster) -> Iterator[str]:
    name = f"rn-{uuid.uuid4().hex[:8]}"
    real_node_cluster.kubectl("create", "namespace", name)
    wait_for(
        lambda: real_node_cluster.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
        30,
        message="default ServiceAccount",
    )
    yield name
    real_node_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def core(real_node_cluster: KubernetesCluster) -> Iterator[client.CoreV1Api]:
    api = real_node_cluster.api_client()
    yield client.CoreV1Api(api)
    api.close()


def base_image(cluster: KubernetesCluster) -> str:
    return cluster.control_plane.node.images["base"]


def apply(cluster: KubernetesCluster, ns: str, *objects: dict) -> None:
    cluster.kubectl(
        "apply", "-n", ns, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})
    )


def web_server(image: str) -> list[dict]:
    """A Deployment of 2 python http.server pods behind a Service ``web`` (port 80)."""
    labels = {"app": "web"}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "web",
                                "image": image,
                                "imagePullPolicy": "Never",
                                "command": ["python3", "-m", "http.server", "8080", "--directory", "/etc"],
                                "readinessProbe": {"httpGet": {"path": "/hostname", "port": 8080}, "periodSeconds": 1},
                            }
                        ]
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    ]


def job(name: str, image: str, script: str) -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "check",
                            "image": image,
                            "imagePullPolicy": "Never",
                            "command": ["python3", "-c", script],
                        }
                    ],
                }
            },
        },
    }


def job_outcome(cluster: KubernetesCluster, ns: str, name: str, timeout: float = 120) -> tuple[str, str]:
    """('Complete' | 'Failed', the pod's log) once the Job finishes."""

    def finished():
        out = cluster.kubectl("get", "job", name, "-n", ns, "-o", "json").stdout
        for cond in json.loads(out).get("status", {}).get("conditions", []) or []:
            if cond["type"] in ("Complete", "Failed") and cond["status"] == "True":
                return cond["type"]
        return None

    outcome = wait_for(finished, timeout, message=f"Job {name}")
    return outcome, cluster.kubectl("logs", f"job/{name}", "-n", ns, check=False).stdout


def test_pods_run_on_the_real_node_and_a_service_answers_from_the_host(real_node_cluster, ns, core):
    apply(real_node_cluster, ns, *web_server(base_image(real_node_cluster)))
    real_node_cluster.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=120s")

    pods = core.list_namespaced_pod(ns, label_selector="app=web").items
    assert len(pods) == 2
    for pod in pods:
        # kwok nodes are tainted in real-node mode: ordinary pods land on the real node only
        assert pod.spec.node_name == realnode.NODE_NAME
        assert pod.status.pod_ip.startswith("10.244.0.")
        (status,) = pod.status.container_statuses
        assert status.ready and status.state.running is not None
        assert status.image_id  # a real container runtime reports the image it ran

    # From the host, the ClusterIP goes through kube-proxy's rules to a pod: the file it serves is
    # the container's own /etc/hostname, i.e. the pod's name. kube-proxy programs the endpoints a
    # moment after the pods turn ready (it rejects the ClusterIP until then), as on any cluster.
    service = core.read_namespaced_service("web", ns)

    def hostname() -> str:
        with urllib.request.urlopen(f"http://{service.spec.cluster_ip}/hostname", timeout=5) as response:
            return response.read().decode().strip()

    names = {wait_for(hostname, 60, message="the Service's ClusterIP to answer from the host")}
    names |= {hostname() for _ in range(20)}
    assert names <= {pod.metadata.name for pod in pods}


def test_pods_resolve_services_and_reach_the_apiserver(real_node_cluster, ns):
    image = base_image(real_node_cluster)
    apply(real_node_cluster, ns, *web_server(image))
    real_node_cluster.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=120s")
    script = f"""
import socket, ssl, time, urllib.request
sa = '/var/run/secrets/kubernetes.io/serviceaccount'
for attempt in range(60):  # until kube-proxy has programmed the new Service's endpoints
    try:
        print('web', urllib.request.urlopen('http://web.{ns}.svc.cluster.local/hostname', timeout=5).status)
        break
    except OSError:
        time.sleep(1)
print('short', urllib.request.urlopen('http://web/hostname', timeout=5).status)
ctx = ssl.create_default_context(cafile=sa + '/ca.crt')
req = urllib.request.Request('https://kubernetes.default.svc/api/v1/namespaces/{ns}/pods',
                             headers={{'Authorization': 'Bearer ' + open(sa + '/token').read()}})
try:
    urllib.request.urlopen(req, context=ctx, timeout=5)
except urllib.error.HTTPError as err:
    print('api', err.code)   # 403: authenticated as the default ServiceAccount, which may not list pods
try:
    socket.getaddrinfo('example.com', 80)
    print('outside resolved')
except socket.gaierror:
    print('outside unresolved')
"""
    real_node_cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(job("probe", image, script)))
    outcome, log = job_outcome(real_node_cluster, ns, "probe")
    assert outcome == "Complete", log
    assert "web 200" in log and "short 200" in log
    assert "api 403" in log
    assert "outside unresolved" in log  # CoreDNS answers cluster.local only: nothing leaves the machine


def test_a_claim_binds_through_local_path_and_its_data_is_on_the_host(real_node_cluster, ns, core):
    image = base_image(real_node_cluster)
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    writer = job("writer", image, "open('/data/proof', 'w').write('written in a pod')")
    spec = writer["spec"]["template"]["spec"]
    spec["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    spec["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    apply(real_node_cluster, ns, claim, writer)
    outcome, log = job_outcome(real_node_cluster, ns, "writer", timeout=180)
    assert outcome == "Complete", log

    pvc = core.read_namespaced_persistent_volume_claim("data", ns)
    assert pvc.status.phase == "Bound"
    assert pvc.spec.storage_class_name == "standard"  # the default class, as on kind
    pv = client.CoreV1Api(real_node_cluster.api_client()).read_persistent_volume(pvc.spec.volume_name)
    host_path = Path(pv.spec.host_path.path)
    assert host_path.is_relative_to(real_node_cluster.control_plane.dir / "local-path")
    assert (host_path / "proof").read_text() == "written in a pod"


def test_a_second_real_node_is_refused_and_leaves_the_first_untouched(real_node_cluster, ns, core, tmp_path):
    from tests.fixtures.kubernetes import controlplane

    apply(real_node_cluster, ns, *web_server(base_image(real_node_cluster)))
    real_node_cluster.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=120s")
    second = controlplane.ControlPlane(
        bin_dir=real_node_cluster.bin_dir, dir=tmp_path / "second", nodes=1, real_node=True
    )
    with pytest.raises(realnode.RealNodeError, match="lsml0 already exists"):
        second.start()
    # The first node's network, Service rules and pods are as they were.
    ip = core.read_namespaced_service("web", ns).spec.cluster_ip
    wait_for(
        lambda: urllib.request.urlopen(f"http://{ip}/hostname", timeout=5).status == 200,
        60,
        message="the first node's Service still answering",
    )
    assert realnode.NODE_NAME in real_node_cluster.control_plane._ready_nodes()
