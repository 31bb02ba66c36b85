#!/usr/bin/env python3
"""A real, local Kubernetes control plane for the tests: no containers, no VMs.

Starts, on free 127.0.0.1 ports and inside one cluster dir:

- etcd (plain HTTP, loopback only, fsync off: test data only),
- kube-apiserver (TLS with a generated CA, client-certificate auth,
  ``--authorization-mode=Node,RBAC``, ServiceAccount admission and token issuing
  with a generated service-account key),
- kube-controller-manager (the default controllers plus the token cleaner:
  Deployments -> ReplicaSets -> Pods, StatefulSets -> Pods + PVCs, garbage
  collection, namespace deletion, ServiceAccount tokens),
- kube-scheduler,
- kwok with kwok's own default node/pod stages, plus a small pool of fake Nodes
  it manages, so that scheduled pods become Running and Ready,
- local-path-provisioner (the dynamic provisioner kind ships) behind a default
  StorageClass ``standard``, so PersistentVolumeClaims bind as on kind,
- with ``--real-node`` (``real_node=True``): one real node whose pods are real
  containers (kubelet on containerd, CNI bridge, kube-proxy, CoreDNS; see
  ``realnode.py``). The kwok nodes are then tainted, so ordinary pods land on
  the real node and only pods that tolerate the taint go to kwok.

It writes an admin kubeconfig (``<dir>/kubeconfig``) and keeps every component's
log in ``<dir>/logs/``; when a component dies or does not get ready, the error
carries the tail of its log.

Standard library only (plus the ``openssl`` command for the certificates), so it
runs from the pytest fixture (``tests/fixtures/kubernetes.py``) and from a shell
(``hack/control-plane/up`` / ``down``) alike. The binaries come from
``hack/control-plane/build.sh``.

CLI:  controlplane.py up --bin-dir DIR [--dir DIR] [--nodes N] [--real-node]
      controlplane.py down [--dir DIR]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import realnode  # noqa: E402  (beside this file; standard library only)

REPO = HERE.parent.parent
VERSIONS_FILE = HERE / "versions.env"
REQUIRED_BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    "helm",
    "local-path-provisioner",
)
REAL_NODE_BINARIES = ("kubelet", "kube-proxy", "crictl", "coredns")
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_TAINT = {"key": KWOK_NODE_ANNOTATION, "value": "fake", "effect": "NoSchedule"}
STORAGE_NAMESPACE = "local-path-storage"
STORAGE_CLASS = "standard"  # kind's name for its default local-path class
LOCAL_PATH_PROVISIONER = "rancher.io/local-path"
HELPER_POD_LABEL = "lsml-local-path-helper"
# kwok completes only Job pods; local-path-provisioner waits for its helper pods to succeed, so on
# kwok nodes they complete too (kwok's own pod-complete stage, selected by the helper's label).
KWOK_HELPER_STAGE = f"""apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: lsml-local-path-helper-complete
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values: ['Running']
    - key: '.metadata.labels.app'
      operator: 'In'
      values: ['{HELPER_POD_LABEL}']
  next:
    statusTemplate: |
      {{{{ $now := Now }}}}
      containerStatuses:
      {{{{ range $index, $item := .spec.containers }}}}
      - image: {{{{ $item.image | Quote }}}}
        name: {{{{ $item.name | Quote }}}}
        ready: false
        restartCount: 0
        started: false
        state:
          terminated:
            exitCode: 0
            finishedAt: {{{{ $now | Quote }}}}
            reason: Completed
            startedAt: {{{{ $now | Quote }}}}
      {{{{ end }}}}
      phase: Succeeded
"""
SERVICE_CIDR = "10.96.0.0/16"  # bookkeeping only: no traffic is ever sent there
STATE_FILE = "cluster.json"


class ControlPlaneError(RuntimeError):
    """The control plane could not be started (message says which part and why)."""


# --------------------------------------------------------------------------- binaries


def read_versions(path: Path = VERSIONS_FILE) -> dict[str, str]:
    versions: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            versions[key.strip()] = value.strip().strip('"')
    return versions


def default_bin_dir() -> Path:
    """The cache dir build.sh fills for the pinned version (whether or not it exists)."""
    cache = Path(os.environ.get("LSML_CACHE_DIR") or Path.home() / ".cache" / "lsml")
    return cache / f"k8s-{read_versions()['K8S_VERSION']}" / "bin"


def find_bin_dir() -> Path:
    """LSML_K8S_BIN_DIR if set, else the versions file's cache path."""
    env = os.environ.get("LSML_K8S_BIN_DIR")
    return Path(env) if env else default_bin_dir()


def kwok_stages_file(bin_dir: Path) -> Path:
    return Path(bin_dir).parent / "share" / "kwok" / "stages.yaml"


def missing_binaries(bin_dir: Path, real_node: bool = False) -> list[str]:
    bin_dir = Path(bin_dir)
    wanted = REQUIRED_BINARIES + (REAL_NODE_BINARIES if real_node else ())
    missing = [b for b in wanted if not os.access(bin_dir / b, os.X_OK)]
    if not kwok_stages_file(bin_dir).is_file():
        missing.append(str(kwok_stages_file(bin_dir)))
    return missing


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_ports(n: int) -> list[int]:
    """n distinct free ports (held open together so the kernel can't repeat one)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def tail(path: Path, lines: int = 40) -> str:
    try:
        data = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(data[-lines:])


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ControlPlaneError(
            "openssl not found: install Debian's openssl package (needed for the test certificates)"
        )
    proc = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ControlPlaneError(f"openssl {' '.join(args)} failed:\n{proc.stderr}")


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child
    """Children die with the process that started them (pytest), even on SIGKILL."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


# --------------------------------------------------------------------------- PKI


class PKI:
    """A CA, the apiserver's serving cert, client certs and the service-account key."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        return self.dir / name

    def create(self, extra_sans: str = "") -> None:
        d = self.dir
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key", cwd=d)
        _openssl(
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-sha256",
            "-days",
            "3650",
            "-subj",
            "/CN=lsml-test-ca",
            "-out",
            "ca.crt",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
            cwd=d,
        )
        self._leaf(
            "apiserver",
            "/CN=kube-apiserver",
            server=True,
            sans="DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,"
            "DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1" + extra_sans,
        )
        self._leaf("admin", "/O=system:masters/CN=lsml-admin")
        self._leaf("controller-manager", "/CN=system:kube-controller-manager")
        self._leaf("scheduler", "/CN=system:kube-scheduler")
        self._leaf("kwok", "/O=system:masters/CN=kwok-controller")
        self._leaf("addons", "/O=system:masters/CN=lsml-addons")  # local-path-provisioner, CoreDNS
        self._leaf("node", f"/O=system:nodes/CN=system:node:{realnode.NODE_NAME}")
        self._leaf("kube-proxy", "/CN=system:kube-proxy")
        self._leaf("kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client")
        # Service-account token signing key (RSA: every client and library accepts RS256).
        _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "sa.key", cwd=d)
        _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)

    def _leaf(self, name: str, subject: str, server: bool = False, sans: str = "") -> None:
        d = self.dir
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=d)
        _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=d)
        ext = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment"]
        ext.append("extendedKeyUsage=" + ("serverAuth,clientAuth" if server else "clientAuth"))
        if sans:
            ext.append("subjectAltName=" + sans)
        (d / f"{name}.ext").write_text("\n".join(ext) + "\n")
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "3650",
            "-sha256",
            "-extfile",
            f"{name}.ext",
            "-out",
            f"{name}.crt",
            cwd=d,
        )


def write_kubeconfig(path: Path, server: str, ca: Path, cert: Path, key: Path, user: str) -> None:
    """A kubeconfig (JSON is valid YAML: every client reads it)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "lsml-local", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}],
        "contexts": [{"name": "lsml-local", "context": {"cluster": "lsml-local", "user": user}}],
        "current-context": "lsml-local",
        "preferences": {},
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)


# --------------------------------------------------------------------------- processes


@dataclass
class Component:
    name: str
    argv: list[str]
    log: Path
    process: subprocess.Popen | None = None
    pid: int | None = None
    env: dict[str, str] | None = None

    def start(self, detach: bool) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the terminal goes to us, not straight to them
                preexec_fn=None if detach else _set_pdeathsig,
                close_fds=True,
                env=self.env,
            )
        self.pid = self.process.pid

    def exited(self) -> int | None:
        if self.process is not None:
            return self.process.poll()
        return None if self.pid is not None and _pid_alive(self.pid, self.argv[0]) else 0

    def stop(self, timeout: float = 10.0) -> None:
        if self.pid is None:
            return
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=timeout)
            return
        # Detached (started by another `up`): only signal it if it is still our binary.
        if not _pid_alive(self.pid, self.argv[0]):
            return
        os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _pid_alive(self.pid, self.argv[0]):
            time.sleep(0.1)
        if _pid_alive(self.pid, self.argv[0]):
            os.kill(self.pid, signal.SIGKILL)


def _pid_alive(pid: int, binary: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return cmdline == binary and state != "Z"


# --------------------------------------------------------------------------- the cluster


@dataclass
class ControlPlane:
    """One local control plane. ``start()`` returns once the API is ready and the fake nodes are Ready."""

    bin_dir: Path
    dir: Path | None = None
    nodes: int = 2
    detach: bool = False  # True for `up`: the processes outlive this Python process
    startup_timeout: float = 90.0
    real_node: bool = False
    node: realnode.RealNode | None = None
    api_host: str = "127.0.0.1"
    # local-path-provisioner's --worker-threads (its default, 4): claims provisioned at once; a benchmark
    # binding thousands of claims raises it (bench/operator.py --storage-workers)
    storage_workers: int = 4
    # the controllers' and the scheduler's client rate limit (requests/s; burst twice that). None keeps upstream's
    # defaults (kube-controller-manager 20 per controller, kube-scheduler 50), which bound how fast thousands of
    # Deployments, pods and claims roll out; large clusters raise them, and so does bench/operator.py
    # (--controller-qps) when it measures an operator against the control plane's pace, not its client limits
    client_qps: float | None = None
    components: list[Component] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    _owns_dir: bool = False

    # -- paths -------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def api_url(self) -> str:
        return f"https://{self.api_host}:{self.ports['apiserver']}"

    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    @property
    def node_names(self) -> list[str]:
        return [f"kwok-node-{i}" for i in range(self.nodes)]

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> ControlPlane:
        self.bin_dir = Path(self.bin_dir)
        missing = missing_binaries(self.bin_dir, self.real_node)
        if missing:
            raise ControlPlaneError(
                f"control-plane binaries missing in {self.bin_dir}: {', '.join(missing)}; "
                "build them with hack/control-plane/build.sh"
            )
        if self.real_node:
            problems = realnode.host_problems()
            if problems:
                raise ControlPlaneError("this host cannot run a real node: " + "; ".join(problems))
        if self.dir is None:
            self.dir = Path(tempfile.mkdtemp(prefix="lsml-k8s-"))
            self._owns_dir = True
        else:
            self.dir = Path(self.dir)
            self.dir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.stop(remove=False)
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def _start(self) -> None:
        if self.real_node:
            # Pods cannot reach the host's loopback: the apiserver serves on the pod bridge's gateway.
            node = realnode.RealNode(
                dir=self.dir / "node", bin_dir=self.bin_dir, net=realnode.HostNetwork(home=str(self.dir))
            )
            # setup() refuses before touching anything when another live real node holds the bridge, takes
            # back what a killed run left, and undoes its own work on any other failure: only a node whose
            # network is ours may be torn down.
            node.net.setup()
            for what in node.net.reclaimed:
                print(f"reclaimed what a killed run left: {what}", file=sys.stderr)
            self.node, self.api_host = node, node.net.gateway
            self._save_state()
        pki = PKI(self.dir / "pki")
        pki.create(extra_sans=f",IP:{self.api_host}" if self.real_node else "")
        p = pki.path
        names = [
            "etcd",
            "etcd-peer",
            "apiserver",
            "controller-manager",
            "scheduler",
            "kwok",
            "kubelet",
            "kubelet-healthz",
            "kube-proxy-healthz",
            "kube-proxy-metrics",
            "coredns-health",
            "coredns-ready",
        ]
        self.ports = dict(zip(names, free_ports(len(names)), strict=True))
        deadline = time.monotonic() + self.startup_timeout

        admin_kc = self.kubeconfig
        write_kubeconfig(admin_kc, self.api_url, p("ca.crt"), p("admin.crt"), p("admin.key"), "lsml-admin")
        kcm_kc = self._kubeconfig("controller-manager", "system:kube-controller-manager")
        sched_kc = self._kubeconfig("scheduler", "system:kube-scheduler")
        kwok_kc = self._kubeconfig("kwok", "kwok-controller")
        self._kubeconfig("addons", "lsml-addons")  # local-path-provisioner, and CoreDNS on the real node
        self._save_state()

        b = lambda name: str(self.bin_dir / name)  # noqa: E731
        etcd_url = f"http://127.0.0.1:{self.ports['etcd']}"
        peer_url = f"http://127.0.0.1:{self.ports['etcd-peer']}"
        etcd = self._add(
            "etcd",
            [
                b("etcd"),
                "--name=lsml",
                f"--data-dir={self.dir / 'etcd-data'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=lsml={peer_url}",
                "--initial-cluster-state=new",
                "--unsafe-no-fsync=true",  # test data: speed over durability
                "--log-level=warn",
            ],
        )
        self._wait("etcd", [etcd], deadline, lambda: self._http_ok(f"{etcd_url}/health"))

        apiserver = self._add(
            "kube-apiserver",
            [
                b("kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                f"--bind-address={self.api_host}",
                f"--advertise-address={self.api_host}",
                f"--secure-port={self.ports['apiserver']}",
                f"--cert-dir={self.dir / 'apiserver-certs'}",
                f"--tls-cert-file={p('apiserver.crt')}",
                f"--tls-private-key-file={p('apiserver.key')}",
                f"--client-ca-file={p('ca.crt')}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={p('sa.pub')}",
                f"--service-account-signing-key-file={p('sa.key')}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",  # on top of the default set (incl. ServiceAccount)
                "--allow-privileged=true",
                # 127.0.0.1 is not a valid Endpoints address; the real node's gateway is
                *([] if self.real_node else ["--endpoint-reconciler-type=none"]),
                f"--kubelet-client-certificate={p('kubelet-client.crt')}",
                f"--kubelet-client-key={p('kubelet-client.key')}",
                "--kubelet-preferred-address-types=InternalIP",
                "--profiling=false",
                "--v=1",
            ],
        )
        self._wait("kube-apiserver", [etcd, apiserver], deadline, lambda: self._api_ok("/readyz"))

        kcm = self._add(
            "kube-controller-manager",
            [
                b("kube-controller-manager"),
                f"--kubeconfig={kcm_kc}",
                f"--authentication-kubeconfig={kcm_kc}",
                f"--authorization-kubeconfig={kcm_kc}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.ports['controller-manager']}",
                f"--cert-dir={self.dir / 'controller-manager-certs'}",
                f"--service-account-private-key-file={p('sa.key')}",
                f"--root-ca-file={p('ca.crt')}",
                f"--cluster-signing-cert-file={p('ca.crt')}",
                f"--cluster-signing-key-file={p('ca.key')}",
                "--use-service-account-credentials=true",
                "--controllers=*,bootstrapsigner,tokencleaner",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--leader-elect=false",
                *self._client_rate_flags(),
                "--v=1",
            ],
        )
        scheduler = self._add(
            "kube-scheduler",
            [
                b("kube-scheduler"),
                f"--kubeconfig={sched_kc}",
                f"--authentication-kubeconfig={sched_kc}",
                f"--authorization-kubeconfig={sched_kc}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.ports['scheduler']}",
                "--leader-elect=false",
                *self._client_rate_flags(),  # deprecated for --config, which the harness does not use
                "--v=1",
            ],
        )
        kwok = self._add(
            "kwok",
            [
                b("kwok"),
                f"--kubeconfig={kwok_kc}",
                f"--config={kwok_stages_file(self.bin_dir)}",
                f"--config={self._write(self.dir / 'kwok-lsml-stages.yaml', KWOK_HELPER_STAGE)}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
                "--node-ip=127.0.0.1",
                "--node-name=kwok-controller",
                f"--node-port={self.ports['kwok']}",
                f"--server-address=127.0.0.1:{self.ports['kwok']}",
                f"--tls-cert-file={p('apiserver.crt')}",
                f"--tls-private-key-file={p('apiserver.key')}",
                "--node-lease-duration-seconds=40",
            ],
            env={**os.environ, "HOME": str(self.dir)},
        )  # ignore a user's ~/.kwok/kwok.yaml
        self._save_state()
        for node in self.node_names:
            self._create_node(node)
        every = [etcd, apiserver, kcm, scheduler, kwok]
        self._wait(
            "kube-controller-manager",
            every,
            deadline,
            lambda: self._https_ok(self.ports["controller-manager"], "/healthz"),
        )
        self._wait("kube-scheduler", every, deadline, lambda: self._https_ok(self.ports["scheduler"], "/healthz"))
        self._wait("kwok (fake nodes Ready)", every, deadline, self._nodes_ready)
        self._wait(
            "kube-controller-manager (default ServiceAccount)",
            every,
            deadline,
            lambda: self._api_ok("/api/v1/namespaces/default/serviceaccounts/default"),
        )
        if self.node is not None:
            self._start_real_node(deadline)
        self._start_storage(deadline)

    def _start_real_node(self, deadline: float) -> None:
        """containerd (+ lsml's images), kubelet, kube-proxy and CoreDNS; returns once the node is Ready."""
        node, p = self.node, (self.dir / "pki").joinpath
        node.dir.mkdir(parents=True, exist_ok=True)
        kubeconfigs = {
            "node": self._kubeconfig("node", f"system:node:{realnode.NODE_NAME}"),
            "kube-proxy": self._kubeconfig("kube-proxy", "system:kube-proxy"),
            "addons": self.dir / "addons.kubeconfig",
        }
        containerd_bin = shutil.which("containerd") or "containerd"
        containerd = self._add(
            "containerd", [containerd_bin, "--config", str(node.write_containerd_config(realnode.SANDBOX_IMAGE))]
        )
        self._wait("containerd (CRI)", [containerd], deadline, lambda: node.crictl("info").returncode == 0)
        t0 = time.monotonic()
        node.images = realnode.import_images(REPO, node.socket, self.logs / "images.log")
        self._save_state()
        deadline += time.monotonic() - t0  # a cold image build is not start-up time
        kubelet_config = node.dir / "kubelet.json"
        kubelet_config.write_text(
            json.dumps(
                realnode.kubelet_config(
                    node.dir, p("ca.crt"), node.socket, node.net, self.ports["kubelet"], self.ports["kubelet-healthz"]
                ),
                indent=2,
            )
            + "\n"
        )
        kubelet = self._add(
            "kubelet",
            [
                str(self.bin_dir / "kubelet"),
                f"--config={kubelet_config}",
                f"--kubeconfig={kubeconfigs['node']}",
                f"--root-dir={node.kubelet_dir}",
                f"--hostname-override={realnode.NODE_NAME}",
                f"--node-ip={node.net.gateway}",
                f"--node-labels={realnode.NODE_LABEL}=real",
                "--v=1",
            ],
        )
        proxy_config = node.dir / "kube-proxy.json"
        proxy_config.write_text(
            json.dumps(
                realnode.kube_proxy_config(
                    kubeconfigs["kube-proxy"],
                    node.net,
                    self.ports["kube-proxy-healthz"],
                    self.ports["kube-proxy-metrics"],
                ),
                indent=2,
            )
            + "\n"
        )
        proxy = self._add("kube-proxy", [str(self.bin_dir / "kube-proxy"), f"--config={proxy_config}", "--v=1"])
        core = node.dir / "Corefile"
        core.write_text(
            realnode.corefile(
                kubeconfigs["addons"], node.net, self.ports["coredns-health"], self.ports["coredns-ready"]
            )
        )
        coredns = self._add("coredns", [str(self.bin_dir / "coredns"), "-conf", str(core)])
        watched = [containerd, kubelet, proxy, coredns]
        self._wait(
            f"kubelet (node {realnode.NODE_NAME} Ready)",
            watched,
            deadline,
            lambda: realnode.NODE_NAME in self._ready_nodes(),
        )
        self._wait(
            "kube-proxy",
            watched,
            deadline,
            lambda: self._http_ok(f"http://127.0.0.1:{self.ports['kube-proxy-healthz']}/healthz"),
        )
        self._wait(
            "CoreDNS", watched, deadline, lambda: self._http_ok(f"http://127.0.0.1:{self.ports['coredns-ready']}/ready")
        )

    def _client_rate_flags(self) -> list[str]:
        """``--kube-api-qps``/``--kube-api-burst`` for the controllers and the scheduler, when ``client_qps`` is set."""
        if self.client_qps is None:
            return []
        return [f"--kube-api-qps={self.client_qps:g}", f"--kube-api-burst={2 * self.client_qps:g}"]

    def _start_storage(self, deadline: float) -> None:
        """local-path-provisioner behind the default StorageClass ``standard``, as kind ships it."""
        kubeconfig = self.dir / "addons.kubeconfig"
        storage = self.dir / "local-path"
        storage.mkdir(parents=True, exist_ok=True)
        helper_image = self.node.images["base"] if self.node is not None else "lsml.local/kwok-helper:fake"
        files = local_path_files(storage, helper_image)
        conf = self.dir / "local-path-conf"
        conf.mkdir(exist_ok=True)
        for name, text in files.items():
            (conf / name).write_text(text)
        for path, body in local_path_objects(files):
            status, answer = self.api_request("POST", path, body)
            if status not in (200, 201, 409):
                raise ControlPlaneError(f"creating {body['kind']} for local-path storage failed ({status}): {answer}")
        provisioner = self._add(
            "local-path-provisioner",
            [
                str(self.bin_dir / "local-path-provisioner"),
                "start",
                f"--kubeconfig={kubeconfig}",
                f"--namespace={STORAGE_NAMESPACE}",
                f"--provisioner-name={LOCAL_PATH_PROVISIONER}",
                f"--config={conf / 'config.json'}",
                f"--helper-pod-file={conf / 'helperPod.yaml'}",
                "--configmap-name=local-path-config",
                "--service-account-name=default",
                f"--helper-image={helper_image}",
                f"--worker-threads={self.storage_workers}",
            ],
        )
        time.sleep(0.5)
        self._wait("local-path-provisioner", [provisioner], deadline, lambda: provisioner.exited() is None)

    def _stop_real_node(self) -> list[str]:
        """kubelet first (or it restarts what we remove), then every sandbox, containerd, and the host network."""
        errors: list[str] = []
        node = self.node
        by_name = {c.name: c for c in self.components}
        for name in ("coredns", "kube-proxy", "kubelet"):
            if name in by_name:
                by_name[name].stop()
        errors += node.remove_pods()
        if "containerd" in by_name:
            by_name["containerd"].stop(timeout=20)
        node.kill_shims()
        still = realnode.unmount_under(self.dir)
        errors += [f"still mounted: {m}" for m in still]
        proxy = self.bin_dir / "kube-proxy"
        if proxy.exists():
            realnode.run([str(proxy), "--cleanup", "--v=0"], check=False)
        errors += node.net.teardown()
        self.components = [c for c in self.components if c.name not in realnode.NODE_COMPONENTS]
        return errors

    def stop(self, remove: bool = True) -> None:
        """Stop every component (reverse order) and remove the dir if we created it (or remove=True for `down`)."""
        errors = []
        if self.node is not None:
            try:
                errors += self._stop_real_node()
            except Exception as exc:  # keep stopping the control plane
                errors.append(f"real node: {exc}")
            self.node = None
        for comp in reversed(self.components):
            try:
                comp.stop()
            except Exception as exc:  # keep stopping the others
                errors.append(f"{comp.name}: {exc}")
        self.components = []
        if remove and self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
        if errors:
            raise ControlPlaneError("errors while stopping: " + "; ".join(errors))

    # -- state (for `down` from another process) ---------------------------
    def _save_state(self) -> None:
        state = {
            "bin_dir": str(self.bin_dir),
            "kubeconfig": str(self.kubeconfig),
            "api_url": self.api_url if self.ports else None,
            "api_host": self.api_host,
            "real_node": self.node.to_state() if self.node is not None else None,
            "ports": self.ports,
            "components": [{"name": c.name, "argv0": c.argv[0], "pid": c.pid} for c in self.components],
        }
        (self.dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")

    @classmethod
    def from_state(cls, directory: Path) -> ControlPlane:
        state = json.loads((Path(directory) / STATE_FILE).read_text())
        cp = cls(bin_dir=Path(state["bin_dir"]), dir=Path(directory), detach=True)
        cp.ports = state.get("ports", {})
        cp.api_host = state.get("api_host", "127.0.0.1")
        if state.get("real_node"):
            cp.real_node = True
            cp.node = realnode.RealNode.from_state(state["real_node"], cp.bin_dir)
        cp.components = [
            Component(c["name"], [c["argv0"]], cp.logs / f"{c['name']}.log", pid=c["pid"]) for c in state["components"]
        ]
        return cp

    # -- internals ---------------------------------------------------------
    def _kubeconfig(self, name: str, user: str) -> Path:
        """``<dir>/<name>.kubeconfig`` for a component, with the client certificate ``pki/<name>.crt``."""
        pki = self.dir / "pki"
        path = self.dir / f"{name}.kubeconfig"
        write_kubeconfig(path, self.api_url, pki / "ca.crt", pki / f"{name}.crt", pki / f"{name}.key", user)
        return path

    @staticmethod
    def _write(path: Path, text: str) -> Path:
        path.write_text(text)
        return path

    def _add(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Component:
        comp = Component(name, argv, self.logs / f"{name}.log", env=env)
        comp.start(detach=self.detach)
        self.components.append(comp)
        self._save_state()
        return comp

    def _wait(self, what: str, watched: list[Component], deadline: float, check) -> None:
        last_error: Exception | None = None
        while True:
            for comp in watched:
                rc = comp.exited()
                if rc is not None:
                    raise ControlPlaneError(
                        f"{comp.name} exited with code {rc} while waiting for {what}; "
                        f"last lines of {comp.log}:\n{tail(comp.log)}"
                    )
            try:
                if check():
                    return
            except Exception as exc:  # not ready yet
                last_error = exc
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {c.name} ({c.log}):\n{tail(c.log, 25)}" for c in watched)
                raise ControlPlaneError(
                    f"timed out after {self.startup_timeout:.0f}s waiting for {what} "
                    f"(last error: {last_error}); component logs:\n{logs}"
                )
            time.sleep(0.2)

    def _ssl_context(self, client: bool = True) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.dir / "pki" / "ca.crt"))
        if client:
            ctx.load_cert_chain(str(self.dir / "pki" / "admin.crt"), str(self.dir / "pki" / "admin.key"))
        return ctx

    def api_request(self, method: str, path: str, body: dict | None = None, timeout: float = 5.0):
        """A request to the apiserver as the admin; returns (status, parsed JSON or text)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.api_url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=self._ssl_context(), timeout=timeout) as resp:
                raw = resp.read().decode()
                status = resp.status
        except urllib.error.HTTPError as err:
            raw, status = err.read().decode(errors="replace"), err.code
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw

    def _api_ok(self, path: str) -> bool:
        status, _ = self.api_request("GET", path, timeout=2.0)
        return status == 200

    @staticmethod
    def _http_ok(url: str) -> bool:
        with urllib.request.urlopen(url, timeout=2.0) as resp:
            return resp.status == 200

    @staticmethod
    def _https_ok(port: int, path: str) -> bool:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # self-signed serving certs of kcm / scheduler
        with urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", context=ctx, timeout=2.0) as resp:
            return resp.status == 200

    def _create_node(self, name: str) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "kubernetes.io/role": "agent",
                    "node-role.kubernetes.io/agent": "",
                    "type": "kwok",
                },
            },
            # no taints: ordinary workloads schedule here, unless a real node is there to take them
            "spec": {"taints": [KWOK_TAINT]} if self.real_node else {},
            "status": {
                "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "1Ti"},
                "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "1Ti"},
                "nodeInfo": {
                    "architecture": "amd64",
                    "operatingSystem": "linux",
                    "kubeletVersion": "fake",
                    "kubeProxyVersion": "fake",
                },
            },
        }
        status, body = self.api_request("POST", "/api/v1/nodes", node)
        if status not in (200, 201, 409):
            raise ControlPlaneError(f"creating fake node {name} failed ({status}): {body}")

    def _ready_nodes(self) -> set[str]:
        status, body = self.api_request("GET", "/api/v1/nodes", timeout=2.0)
        if status != 200:
            return set()
        ready = set()
        for item in body.get("items", []):
            for cond in item.get("status", {}).get("conditions", []) or []:
                if cond.get("type") == "Ready" and cond.get("status") == "True":
                    ready.add(item["metadata"]["name"])
        return ready

    def _nodes_ready(self) -> bool:
        return set(self.node_names) <= self._ready_nodes()


# --------------------------------------------------------------------------- storage


def local_path_files(storage: Path, helper_image: str) -> dict[str, str]:
    """local-path-provisioner's config, helper pod and scripts (its upstream defaults, our paths and image)."""
    config = {"nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": [str(storage)]}]}
    helper_pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "helper-pod", "labels": {"app": HELPER_POD_LABEL}},
        "spec": {"containers": [{"name": "helper-pod", "image": helper_image, "imagePullPolicy": "IfNotPresent"}]},
    }
    return {
        "config.json": json.dumps(config, indent=2) + "\n",
        "helperPod.yaml": json.dumps(helper_pod, indent=2) + "\n",
        "setup": '#!/bin/sh\nset -eu\nmkdir -m 0777 -p "$VOL_DIR"\n',
        "teardown": '#!/bin/sh\nset -eu\nrm -rf "$VOL_DIR"\n',
    }


def local_path_objects(files: dict[str, str]) -> list[tuple[str, dict]]:
    """(collection path, object) pairs: the provisioner's namespace and ConfigMap, and the default StorageClass."""
    return [
        ("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": STORAGE_NAMESPACE}}),
        (
            f"/api/v1/namespaces/{STORAGE_NAMESPACE}/configmaps",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "local-path-config", "namespace": STORAGE_NAMESPACE},
                "data": files,
            },
        ),
        (
            "/apis/storage.k8s.io/v1/storageclasses",
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {
                    "name": STORAGE_CLASS,
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                },
                "provisioner": LOCAL_PATH_PROVISIONER,
                "volumeBindingMode": "WaitForFirstConsumer",
                "reclaimPolicy": "Delete",
            },
        ),
    ]


# --------------------------------------------------------------------------- CLI


def default_cluster_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(os.environ.get("LSML_CONTROL_PLANE_DIR") or Path(base) / "lsml-control-plane")


def _cmd_up(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    if (directory / STATE_FILE).exists():
        existing = ControlPlane.from_state(directory)
        if existing.components and all(c.exited() is None for c in existing.components):
            print(f"control plane already running in {directory}", file=sys.stderr)
            print(existing.kubeconfig)
            return 0
        print(f"removing stale control plane dir {directory}", file=sys.stderr)
        existing.stop(remove=True)
    elif directory.exists() and any(directory.iterdir()):
        print(f"{directory} exists and is not a control plane dir; pass --dir", file=sys.stderr)
        return 2
    cp = ControlPlane(
        bin_dir=Path(args.bin_dir),
        dir=directory,
        nodes=args.nodes,
        detach=True,
        startup_timeout=args.timeout,
        real_node=args.real_node,
    )
    try:
        cp.start()
    except ControlPlaneError as exc:
        print(f"control plane failed to start: {exc}", file=sys.stderr)
        print(f"logs kept in {cp.logs}; run hack/control-plane/down to clean up", file=sys.stderr)
        return 1
    real = f" + real node {realnode.NODE_NAME} (kwok nodes tainted)" if args.real_node else ""
    print(
        f"control plane up in {cp.startup_seconds:.1f}s: {cp.api_url}, {args.nodes} kwok nodes{real}, "
        f"logs in {cp.logs}",
        file=sys.stderr,
    )
    print(f"export KUBECONFIG={cp.kubeconfig} PATH={cp.bin_dir}:$PATH", file=sys.stderr)
    print(cp.kubeconfig)
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    if not (directory / STATE_FILE).exists():
        print(f"no control plane in {directory}", file=sys.stderr)
        if directory.exists() and args.dir_is_default:
            shutil.rmtree(directory, ignore_errors=True)
        return 0
    cp = ControlPlane.from_state(directory)
    cp.stop(remove=True)
    print(f"control plane in {directory} stopped and removed", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a control plane; prints the kubeconfig path last")
    up.add_argument("--bin-dir", default=str(find_bin_dir()))
    up.add_argument("--dir", default=None)
    up.add_argument("--nodes", type=int, default=2)
    up.add_argument("--timeout", type=float, default=90.0)
    up.add_argument(
        "--real-node",
        action="store_true",
        help="also run a real node (kubelet, containerd, CNI, kube-proxy, CoreDNS) that runs lsml's images",
    )
    down = sub.add_parser("down", help="stop the control plane and remove its dir")
    down.add_argument("--dir", default=None)
    args = parser.parse_args(argv)
    args.dir_is_default = args.dir is None
    if args.dir is None:
        args.dir = str(default_cluster_dir())
    return _cmd_up(args) if args.command == "up" else _cmd_down(args)


if __name__ == "__main__":
    sys.exit(main())
