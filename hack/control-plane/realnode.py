"""A real Kubernetes node beside the local control plane: pods that really run.

The kwok nodes of ``controlplane.py`` only pretend. This module adds one node
whose pods are real containers:

- **host network**: a Linux bridge (``lsml0``, gateway ``10.244.0.1/24``) made
  before the apiserver starts, because pods cannot reach the host's loopback:
  in real-node mode the apiserver serves on the gateway address, so pods reach
  it through the ``kubernetes`` Service and the host through the same address.
  ``ip_forward`` and ``bridge-nf-call-iptables`` are switched on (and restored
  by ``down``), and a chain of our own drops every packet between the bridge
  and any other interface: pods talk to each other and to the host, never to
  the outside network.
- **containerd** with a config of its own (own root, state and socket; the CRI
  plugin on; ``restrict_oom_score_adj``, without which runc cannot start a
  container in this sandbox), CNI ``bridge`` + ``portmap`` from Debian's
  ``containernetworking-plugins``, host-local IPAM state in the cluster dir.
- **kubelet** (cgroupfs driver, cgroup v1 allowed, swap allowed, no local
  storage isolation: the eviction manager cannot stat this machine's disk),
  **kube-proxy** in iptables mode, and **CoreDNS** as host processes. CoreDNS
  answers ``cluster.local`` only (no ``forward``: nothing leaves the machine).
- **images**: no registry is reachable, so ``hack/images/build --import-to``
  puts lsml's images (and the sandbox "pause" image) into containerd.

``stop()`` leaves nothing behind: kubelet stops first, crictl stops and removes
every pod sandbox (so CNI releases addresses and the network namespaces go),
containerd and its shims stop, mounts under the node's dirs are unmounted,
kube-proxy's rules are cleaned, iptables chains that were not there before are
removed, the bridge is deleted, the sysctls and cgroups are restored. A run
killed before ``stop()`` leaves all that behind; the owner record written
before the bridge is made (``/run/lsml-realnode.json``: owner pid, cluster dir,
the snapshot teardown needs) lets the next node's setup take it back when
nothing of that run still runs, and refuse when something does.

Needs root, cgroups (v1 or v2), iptables and the ``bridge`` netfilter hooks.
Standard library only, like ``controlplane.py``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

NODE_NAME = "lsml-node"
BRIDGE = "lsml0"
POD_SUBNET = "10.244.0.0/24"
GATEWAY = "10.244.0.1"
CNI_NETWORK = "lsml"
CNI_BIN_DIR = Path("/usr/lib/cni")
FORWARD_CHAIN = "LSML-NODE-FORWARD"
# Who holds the bridge: written before the bridge is made, removed by teardown. A record whose owner is gone
# (a run killed before its teardown) is what lets the next node reclaim the host instead of refusing it.
OWNER_RECORD = "/run/lsml-realnode.json"
CLUSTER_DOMAIN = "cluster.local"
NODE_LABEL = "lsml.dev/node"  # value "real" on the real node (kwok nodes carry type=kwok)
SANDBOX_IMAGE = "lsml.local/pause:3.10"  # containerd's sandbox image; hack/images/build provides it
NODE_COMPONENTS = ("containerd", "kubelet", "kube-proxy", "coredns")
SYSCTLS = ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables")
HOST_PACKAGES = {  # what the host must have, with the Debian package that brings it
    "containerd": "containerd",
    "runc": "runc",
    "iptables": "iptables",
    "ip": "iproute2",
    "mount": "mount",
}


class RealNodeError(RuntimeError):
    """The real node could not be set up (the message says what the host lacks or which part failed)."""


def host_problems() -> list[str]:
    """What stops a real node on this host, each with what to do about it (empty when nothing)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("not root: kubelet, containerd and the pod network need root")
    for tool, package in HOST_PACKAGES.items():
        if shutil.which(tool) is None:
            problems.append(f"{tool} not found: install Debian's {package} (hack/install-system-deps.sh does)")
    for plugin in ("bridge", "portmap", "host-local", "loopback"):
        if not os.access(CNI_BIN_DIR / plugin, os.X_OK):
            problems.append(f"CNI plugin {CNI_BIN_DIR / plugin} missing: install Debian's containernetworking-plugins")
    if not Path("/sys/fs/cgroup").is_dir():
        problems.append("/sys/fs/cgroup is not mounted: kubelet needs cgroups")
    if not Path("/proc/sys/net/bridge").is_dir():
        problems.append("no /proc/sys/net/bridge: the kernel lacks br_netfilter (Services between pods need it)")
    return problems


def run(argv: list[str], check: bool = True, timeout: float = 60.0, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise RealNodeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


# --------------------------------------------------------------------------- host network


def _read_sysctl(name: str) -> str:
    return Path("/proc/sys", name).read_text().strip()


def _write_sysctl(name: str, value: str) -> None:
    Path("/proc/sys", name).write_text(value + "\n")


def _chains(binary: str, table: str) -> set[str]:
    proc = run([binary, "-w", "-t", table, "-S"], check=False)
    return {line.split()[1] for line in proc.stdout.splitlines() if line.startswith("-N ")}


IPTABLES = ("iptables", "ip6tables")
TABLES = ("filter", "nat", "mangle")


def iptables_snapshot() -> dict[str, list[str]]:
    """Chains that exist now, per ``binary:table``: teardown removes only chains made after this."""
    snap = {}
    for binary in IPTABLES:
        if shutil.which(binary) is None:
            continue
        for table in TABLES:
            snap[f"{binary}:{table}"] = sorted(_chains(binary, table))
    return snap


def new_chains(snapshot: dict[str, list[str]]) -> dict[tuple[str, str], set[str]]:
    """(binary, table) -> the chains there now that ``snapshot`` did not have."""
    found = {}
    for key, before in snapshot.items():
        binary, table = key.split(":")
        found[(binary, table)] = _chains(binary, table) - set(before)
    return found


def remove_new_chains(snapshot: dict[str, list[str]]) -> list[str]:
    """Delete the chains that were not in ``snapshot`` and the rules that jump to them; returns what went."""
    removed = []
    for (binary, table), new in new_chains(snapshot).items():
        removed += remove_chains(binary, table, new)
    return removed


def remove_chains(binary: str, table: str, chains: set[str]) -> list[str]:
    """Delete ``chains`` and the rules elsewhere that jump to them; returns what went."""
    removed: list[str] = []
    if not chains:
        return removed
    rules = run([binary, "-w", "-t", table, "-S"], check=False).stdout.splitlines()
    for rule in rules:  # rules in other chains that jump into one of these
        parts = rule.split()
        if (
            parts[:1] == ["-A"]
            and parts[1] not in chains
            and any(p in chains for i, p in enumerate(parts) if i and parts[i - 1] in ("-j", "-g"))
        ):
            run([binary, "-w", "-t", table, "-D", *parts[1:]], check=False)
    for chain in chains:
        run([binary, "-w", "-t", table, "-F", chain], check=False)
    for chain in chains:
        if run([binary, "-w", "-t", table, "-X", chain], check=False).returncode == 0:
            removed.append(f"{binary} -t {table} {chain}")
    return removed


@dataclass
class HostNetwork:
    """The bridge, sysctls and forward guard of the real node (set up before the apiserver starts)."""

    bridge: str = BRIDGE
    gateway: str = GATEWAY
    subnet: str = POD_SUBNET
    forward_chain: str = FORWARD_CHAIN
    record: str = OWNER_RECORD
    home: str = ""  # the cluster dir: its processes, shims and mounts are this node's
    saved_sysctls: dict[str, str] = field(default_factory=dict)
    iptables_before: dict[str, list[str]] = field(default_factory=dict)
    netns_before: list[str] = field(default_factory=list)
    cgroups_before: list[str] = field(default_factory=list)
    reclaimed: list[str] = field(default_factory=list)  # what setup() took back from a run killed before teardown

    def setup(self) -> None:
        """Make the network, after taking back what a killed run left (a live node's network is refused)."""
        self.reclaimed = reclaim_stale(self)
        if Path(f"/sys/class/net/{self.bridge}").exists():
            raise RealNodeError(
                f"network interface {self.bridge} already exists and no record in {self.record} says whose: "
                f"another real node may run on this host (hack/control-plane/down, or `ip link del {self.bridge}`)"
            )
        self.iptables_before = iptables_snapshot()
        self.netns_before = sorted(_netns())
        self.cgroups_before = sorted(str(p) for p in _kubepods_cgroups())
        self.saved_sysctls = {name: _read_sysctl(name) for name in SYSCTLS}
        _write_owner_record(self)  # before anything is made: a run killed from here on is reclaimable
        try:
            self._create()
        except BaseException:
            self.teardown()
            raise

    def _create(self) -> None:
        prefix = self.subnet.split("/")[1]
        run(["ip", "link", "add", self.bridge, "type", "bridge"])
        run(["ip", "addr", "add", f"{self.gateway}/{prefix}", "dev", self.bridge])
        run(["ip", "link", "set", self.bridge, "up"])
        for name in SYSCTLS:
            _write_sysctl(name, "1")
        # Pods reach each other and the host, never another interface (the machine's network is off limits).
        chain = self.forward_chain
        run(["iptables", "-w", "-N", chain])
        run(["iptables", "-w", "-A", chain, "-i", self.bridge, "-o", self.bridge, "-j", "ACCEPT"])
        run(["iptables", "-w", "-A", chain, "-i", self.bridge, "-j", "DROP"])
        run(["iptables", "-w", "-A", chain, "-o", self.bridge, "-j", "DROP"])
        run(["iptables", "-w", "-I", "FORWARD", "1", "-j", chain])

    def teardown(self) -> list[str]:
        """Undo setup (and what kubelet/kube-proxy/CNI left); returns a list of problems (empty when clean)."""
        problems = []
        for ns in self.new_netns():
            if ns.startswith("cni-") and run(["ip", "netns", "delete", ns], check=False).returncode != 0:
                problems.append(f"network namespace {ns} could not be deleted")
        remove_new_chains(self.iptables_before)
        if Path(f"/sys/class/net/{self.bridge}").exists():
            run(["ip", "link", "del", self.bridge], check=False)
        for name, value in self.saved_sysctls.items():
            try:
                _write_sysctl(name, value)
            except OSError as exc:
                problems.append(f"restoring {name}={value}: {exc}")
        for cgroup in self.new_cgroups():
            _remove_cgroup_tree(cgroup)
        for cache in Path("/var/lib/cni/results").glob(f"{CNI_NETWORK}-*"):
            cache.unlink(missing_ok=True)
        if _record_of(self) is not None:
            Path(self.record).unlink(missing_ok=True)
        return problems

    def new_netns(self) -> list[str]:
        """Network namespaces made since setup (the CNI's are `cni-*`)."""
        return sorted(set(_netns()) - set(self.netns_before))

    def new_cgroups(self) -> list[Path]:
        """kubelet's top cgroups made since setup."""
        before = set(self.cgroups_before)
        return [cgroup for cgroup in _kubepods_cgroups() if str(cgroup) not in before]

    def to_state(self) -> dict:
        return {
            "bridge": self.bridge,
            "gateway": self.gateway,
            "subnet": self.subnet,
            "forward_chain": self.forward_chain,
            "record": self.record,
            "home": self.home,
            "saved_sysctls": self.saved_sysctls,
            "iptables_before": self.iptables_before,
            "netns_before": self.netns_before,
            "cgroups_before": self.cgroups_before,
        }

    @classmethod
    def from_state(cls, state: dict) -> HostNetwork:
        return cls(**state)


def _process_start(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (with the pid, names one process for ever)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _write_owner_record(net: HostNetwork) -> None:
    pid = os.getpid()
    record = {"owner_pid": pid, "owner_start": _process_start(pid), "network": net.to_state()}
    path = Path(net.record)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)


def _read_owner_record(path: str) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # unreadable: nobody can be shown to own it


def _record_of(net: HostNetwork) -> dict | None:
    """The owner record when it is this bridge's (None: no record, an unreadable one, or another bridge's)."""
    record = _read_owner_record(net.record)
    return record if record and record.get("network", {}).get("bridge") == net.bridge else None


def _processes_naming(home: str) -> dict[int, bytes]:
    """Live processes (zombies aside) whose command line names ``home``: pid -> command line."""
    marker = home.encode()
    found = {}
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit() or int(proc_dir.name) == os.getpid():
            continue
        try:
            cmdline = (proc_dir / "cmdline").read_bytes()
            state = (proc_dir / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker in cmdline and state != "Z":
            found[int(proc_dir.name)] = cmdline
    return found


def _record_owner_alive(record: dict) -> str | None:
    """Why the node of ``record`` still runs (its owner or one of its processes), or None when it is gone.

    containerd's shims do not count: they outlive a killed containerd, and reclaiming is what stops them.
    """
    pid = record.get("owner_pid")
    if isinstance(pid, int) and record.get("owner_start") and _process_start(pid) == record["owner_start"]:
        return f"its owner, pid {pid}, runs"
    home = record.get("network", {}).get("home") or ""
    if home:
        pids = [p for p, cmdline in _processes_naming(home).items() if b"containerd-shim" not in cmdline]
        if pids:
            return f"processes of {home} run (pids {', '.join(map(str, pids[:5]))})"
    return None


def _kill_shims_naming(marker: str) -> None:
    """SIGKILL the containerd-shim processes whose command line names ``marker`` (a cluster dir, a socket)."""
    for pid, cmdline in _processes_naming(marker).items():
        if b"containerd-shim" in cmdline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def reclaim_stale(net: HostNetwork) -> list[str]:
    """Take back the host network (and shims, mounts) of a real node whose run was killed before teardown.

    A SIGKILLed test run or `up` whose processes died leaves the bridge, the forward chain, the jump to it and
    the raised sysctls behind; every later node then fails on ``ip link add`` or ``iptables -N``. The owner
    record says whose they are: when neither its owner nor any process of its cluster dir runs, they are undone
    exactly as that node's teardown would have (its own snapshot, its saved sysctls). A live node is refused.
    """
    done: list[str] = []
    record = _read_owner_record(net.record)
    if record is not None:
        stale = HostNetwork.from_state(record["network"]) if record.get("network") else None
        if stale is not None and stale.bridge == net.bridge:
            alive = _record_owner_alive(record)
            if alive:
                raise RealNodeError(
                    f"network interface {net.bridge} already exists: another real node runs on this host ({alive}; "
                    f"cluster dir {stale.home or 'unknown'}); stop it with hack/control-plane/down"
                )
            if stale.home:
                _kill_shims_naming(stale.home)
                if Path(stale.home).exists():
                    unmount_under(Path(stale.home))
            stale.teardown()
            done.append(f"the real node of {stale.home or 'an unknown dir'} (owner pid {record.get('owner_pid')})")
        if stale is None or stale.bridge == net.bridge:  # another bridge's record is not ours to drop
            Path(net.record).unlink(missing_ok=True)
    if not Path(f"/sys/class/net/{net.bridge}").exists() and net.forward_chain in _chains("iptables", "filter"):
        # The chain without its bridge: a live node always has both, so this is a killed run's (or one from
        # before owner records), and every `iptables -N` would fail on it.
        done += remove_chains("iptables", "filter", {net.forward_chain})
    return done


def _netns() -> list[str]:
    try:
        return os.listdir("/run/netns")
    except FileNotFoundError:
        return []


def _kubepods_cgroups() -> list[Path]:
    """kubelet's top cgroups (``kubepods`` under each cgroup v1 hierarchy, or under the v2 root)."""
    root = Path("/sys/fs/cgroup")
    found = [p for p in root.glob("*/kubepods") if p.is_dir()]
    found += [p for p in root.glob("kubepods*") if p.is_dir()]
    return found


def _remove_cgroup_tree(path: Path) -> None:
    for child in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        try:
            child.rmdir()
        except OSError:
            pass
    try:
        path.rmdir()
    except OSError:
        pass


def unmount_under(*roots: Path) -> list[str]:
    """Unmount every mount below ``roots`` (deepest first, lazily if busy); returns those still mounted."""
    prefixes = [str(Path(r).resolve()) + "/" for r in roots]

    def ours() -> list[str]:
        points = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if any((point + "/").startswith(p) for p in prefixes):
                points.append(point)
        return sorted(set(points), key=lambda p: p.count("/"), reverse=True)

    for point in ours():
        if run(["umount", point], check=False).returncode != 0:
            run(["umount", "-l", point], check=False)
    return ours()


# --------------------------------------------------------------------------- configs


def containerd_config(base: Path, sandbox_image: str) -> str:
    return f"""version = 2
root = "{base}/root"
state = "{base}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{base}/containerd.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "{base}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{base}/net.d"
"""


def cni_conflist(net: HostNetwork, ipam_dir: Path) -> dict:
    return {
        "cniVersion": "0.4.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": net.bridge,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(ipam_dir),
                    "ranges": [[{"subnet": net.subnet, "gateway": net.gateway}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(base: Path, ca: Path, socket_path: Path, net: HostNetwork, port: int, healthz_port: int) -> dict:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": net.gateway,  # the apiserver reaches it here for logs and exec
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "AlwaysAllow"},
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "localStorageCapacityIsolation": False,
        "containerRuntimeEndpoint": f"unix://{socket_path}",
        "clusterDNS": [net.gateway],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": "",  # pods get the cluster's search path only, no host resolvers
        "podCIDR": net.subnet,
        "podLogsDir": str(base / "pod-logs"),
        "makeIPTablesUtilChains": False,
        "serializeImagePulls": False,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "registerNode": True,
        "maxPods": 60,
        "evictionHard": {"memory.available": "100Mi"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "shutdownGracePeriod": "0s",
    }


def kube_proxy_config(kubeconfig: Path, net: HostNetwork, healthz_port: int, metrics_port: int) -> dict:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables",
        "clusterCIDR": net.subnet,
        "hostnameOverride": NODE_NAME,
        "bindAddress": "127.0.0.1",
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        # 0 = leave the host's conntrack sysctls alone
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        "iptables": {"localhostNodePorts": False, "masqueradeAll": False},
    }


def corefile(kubeconfig: Path, net: HostNetwork, health_port: int, ready_port: int) -> str:
    return f""".:53 {{
    bind {net.gateway}
    errors
    health 127.0.0.1:{health_port}
    ready 127.0.0.1:{ready_port}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} lsml-local
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
}}
"""


# --------------------------------------------------------------------------- images


def import_images(repo: Path, socket_path: Path, log: Path) -> dict[str, str]:
    """Build (cached) and import lsml's images into the node's containerd; returns name -> reference."""
    build = repo / "hack" / "images" / "build"
    if not os.access(build, os.X_OK):
        raise RealNodeError(f"{build} not found: the real node needs lsml's images built locally")
    with open(log, "ab") as out:
        proc = subprocess.run(
            [str(build), "--import-to", str(socket_path)], stdout=subprocess.PIPE, stderr=out, text=True, timeout=3600
        )
    if proc.returncode != 0:
        raise RealNodeError(f"hack/images/build failed (exit {proc.returncode}); see {log}")
    refs = {}
    for line in proc.stdout.splitlines():
        m = re.fullmatch(r"([a-z0-9_-]+)=(\S+)", line.strip())
        if m:
            refs[m.group(1)] = m.group(2)
    missing = {"pause", "base"} - set(refs)
    if missing:
        raise RealNodeError(
            f"hack/images/build printed no {', '.join(sorted(missing))} image reference; stdout:\n{proc.stdout}"
        )
    if refs["pause"] != SANDBOX_IMAGE:  # containerd's config names the sandbox image before the import
        run(["ctr", "-a", str(socket_path), "-n", "k8s.io", "images", "tag", "--force", refs["pause"], SANDBOX_IMAGE])
    return refs


# --------------------------------------------------------------------------- the node


#: Seconds teardown keeps removing pod sandboxes that containerd still refuses (a container still starting).
REMOVE_PODS_TIMEOUT = 60.0
REMOVE_PODS_RETRY_SECONDS = 1.0


@dataclass
class RealNode:
    """Paths and settings of the real node; ``ControlPlane`` starts and stops its processes."""

    dir: Path
    bin_dir: Path
    net: HostNetwork = field(default_factory=HostNetwork)
    images: dict[str, str] = field(default_factory=dict)

    @property
    def containerd_dir(self) -> Path:
        return self.dir / "containerd"

    @property
    def socket(self) -> Path:
        return self.containerd_dir / "containerd.sock"

    @property
    def kubelet_dir(self) -> Path:
        return self.dir / "kubelet"

    def crictl(self, *args: str, check: bool = False, timeout: float = 60.0) -> subprocess.CompletedProcess:
        return run(
            [
                str(self.bin_dir / "crictl"),
                f"--runtime-endpoint=unix://{self.socket}",
                f"--image-endpoint=unix://{self.socket}",
                "--timeout=30s",
                *args,
            ],
            check=check,
            timeout=timeout,
        )

    def write_containerd_config(self, sandbox_image: str) -> Path:
        base = self.containerd_dir
        (base / "net.d").mkdir(parents=True, exist_ok=True)
        (base / "net.d" / "10-lsml.conflist").write_text(
            json.dumps(cni_conflist(self.net, self.dir / "cni-ipam"), indent=2) + "\n"
        )
        config = base / "config.toml"
        config.write_text(containerd_config(base, sandbox_image))
        return config

    def remove_pods(self, timeout: float = REMOVE_PODS_TIMEOUT) -> list[str]:
        """Stop and remove every pod sandbox (CNI DEL releases addresses and deletes the netns).

        A sandbox that containerd refuses to remove is tried again until `timeout`: the kubelet, stopped
        first, may have been in the middle of starting a container, and containerd refuses to remove a
        container "in starting state" until that start has ended (a loaded pass's teardown met it). What
        is still refused at the deadline is returned.
        """
        if not self.socket.exists():
            return []
        deadline = time.monotonic() + timeout
        while True:
            ids = self.crictl("pods", "-q").stdout.split()
            for pod in ids:
                self.crictl("stopp", pod)
            problems = []
            for pod in ids:
                proc = self.crictl("rmp", "-f", pod)
                if proc.returncode != 0:
                    problems.append(f"crictl rmp {pod}: {proc.stderr.strip()}")
            if not problems or time.monotonic() >= deadline:
                return problems
            time.sleep(REMOVE_PODS_RETRY_SECONDS)

    def kill_shims(self) -> None:
        """containerd-shim processes of this node's containerd (their cmdline names its socket)."""
        _kill_shims_naming(str(self.socket))

    def to_state(self) -> dict:
        return {"dir": str(self.dir), "net": self.net.to_state(), "images": self.images}

    @classmethod
    def from_state(cls, state: dict, bin_dir: Path) -> RealNode:
        return cls(
            dir=Path(state["dir"]),
            bin_dir=bin_dir,
            net=HostNetwork.from_state(state["net"]),
            images=state.get("images", {}),
        )


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - not ready yet
            last = exc
        time.sleep(0.2)
    raise RealNodeError(
        f"timed out after {timeout:.0f}s waiting for {what}" + (f" (last error: {last})" if last else "")
    )


def leftovers(cluster_dir: Path, net: HostNetwork) -> list[str]:
    """What a stopped real node left on the host (empty when ``stop()`` cleaned up everything)."""
    found = []
    marker = str(cluster_dir).encode()
    for proc_dir in Path("/proc").iterdir():
        if proc_dir.name.isdigit() and int(proc_dir.name) != os.getpid():
            try:
                cmdline = (proc_dir / "cmdline").read_bytes()
            except OSError:
                continue
            if marker in cmdline:
                shown = cmdline.replace(b"\0", b" ").decode(errors="replace")[:160]
                found.append(f"process {proc_dir.name}: {shown}")
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if point.startswith(str(cluster_dir)):
            found.append(f"mount {point}")
    if Path(f"/sys/class/net/{net.bridge}").exists():
        found.append(f"bridge {net.bridge}")
    found += [f"network namespace {ns}" for ns in net.new_netns()]
    for (binary, table), chains in new_chains(net.iptables_before).items():
        found += [f"{binary} -t {table} chain {chain}" for chain in sorted(chains)]
    found += [f"cgroup {cgroup}" for cgroup in net.new_cgroups()]
    if _record_of(net) is not None:
        found.append(f"owner record {net.record}")
    for name, value in net.saved_sysctls.items():
        if _read_sysctl(name) != value:
            found.append(f"sysctl {name} is {_read_sysctl(name)}, was {value}")
    return found
