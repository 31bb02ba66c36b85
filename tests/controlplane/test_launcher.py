"""The launcher itself: up/down from a shell, clean teardown, and errors that show the failing log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.kubernetes import REPO, controlplane

pytestmark = pytest.mark.kubernetes


@pytest.fixture(scope="module")
def bin_dir() -> Path:
    bin_dir = controlplane.find_bin_dir()
    missing = controlplane.missing_binaries(bin_dir)
    if missing:
        if os.environ.get("LSML_TEST_KUBECONFIG"):
            pytest.skip("launcher tests need the local binaries; LSML_TEST_KUBECONFIG uses an existing cluster")
        pytest.fail(f"control-plane binaries missing in {bin_dir}: {missing}; run hack/control-plane/build.sh")
    return bin_dir


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _listening_addresses(pid: int) -> list[str]:
    """host:port of every listening TCP socket of a process, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, state, inode = parts[1], parts[3], parts[9]
            if state != "0A" or inode not in inodes:  # 0A = LISTEN
                continue
            host_hex, port_hex = local.split(":")
            port = int(port_hex, 16)
            if v6:
                host = "[v6]" + host_hex if host_hex != "0" * 24 + "0100007F" else "127.0.0.1"
            else:
                host = ".".join(str(b) for b in reversed(bytes.fromhex(host_hex)))
            found.append(f"{host}:{port}")
    return found


def test_up_and_down_scripts(bin_dir: Path, tmp_path: Path) -> None:
    cluster_dir = tmp_path / "cp"
    env = {**os.environ, "LSML_K8S_BIN_DIR": str(bin_dir)}
    up = subprocess.run(
        [str(REPO / "hack/control-plane/up"), "--dir", str(cluster_dir), "--nodes", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    try:
        assert up.returncode == 0, up.stderr
        kubeconfig = Path(up.stdout.strip().splitlines()[-1])
        assert kubeconfig == cluster_dir / "kubeconfig" and kubeconfig.is_file()
        state = json.loads((cluster_dir / "cluster.json").read_text())
        pids = [c["pid"] for c in state["components"]]
        assert {c["name"] for c in state["components"]} == {
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kwok",
            "local-path-provisioner",
        }
        assert all(_alive(pid) for pid in pids)  # `up` returned; the cluster keeps running
        nodes = subprocess.run(
            [str(bin_dir / "kubectl"), f"--kubeconfig={kubeconfig}", "get", "nodes", "-o", "json"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        items = json.loads(nodes.stdout)["items"]
        assert [n["metadata"]["name"] for n in items] == ["kwok-node-0"]
        # Everything listens on loopback only.
        assert state["api_url"].startswith("https://127.0.0.1:")
        clients_only = {"local-path-provisioner"}  # talks to the API, serves nothing
        for comp in state["components"]:
            addresses = _listening_addresses(comp["pid"])
            if comp["name"] in clients_only:
                assert addresses == [], (comp["name"], addresses)
                continue
            assert addresses, f"{comp['name']} listens nowhere?"
            assert all(a.startswith("127.0.0.1:") for a in addresses), (comp["name"], addresses)
    finally:
        down = subprocess.run(
            [str(REPO / "hack/control-plane/down"), "--dir", str(cluster_dir)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert down.returncode == 0, down.stderr
    assert not cluster_dir.exists()
    assert not any(_alive(pid) for pid in pids)


def test_component_failure_shows_its_log_and_cleans_up(bin_dir: Path, tmp_path: Path) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    for name in controlplane.REQUIRED_BINARIES:
        (fake_bin / name).symlink_to(bin_dir / name)
    (fake_bin / "kube-apiserver").unlink()
    (fake_bin / "kube-apiserver").write_text(
        "#!/bin/sh\necho 'E1127 fake-apiserver: cannot start: bad flag' >&2\nexit 3\n"
    )
    (fake_bin / "kube-apiserver").chmod(0o755)
    stages = controlplane.kwok_stages_file(bin_dir)
    (tmp_path / "share" / "kwok").mkdir(parents=True)
    (tmp_path / "share" / "kwok" / "stages.yaml").symlink_to(stages)

    cp = controlplane.ControlPlane(bin_dir=fake_bin, startup_timeout=60)
    with pytest.raises(controlplane.ControlPlaneError) as excinfo:
        cp.start()
    message = str(excinfo.value)
    assert "kube-apiserver exited with code 3" in message
    assert "fake-apiserver: cannot start: bad flag" in message  # the tail of its log
    state = json.loads((cp.dir / "cluster.json").read_text())
    etcd_pid = next(c["pid"] for c in state["components"] if c["name"] == "etcd")
    assert not _alive(etcd_pid)  # start() already stopped what it had started
    assert (cp.dir / "logs" / "kube-apiserver.log").is_file()  # logs kept for the caller
    cp.stop(remove=True)
    assert not cp.dir.exists()


def test_missing_binaries_are_named(tmp_path: Path) -> None:
    cp = controlplane.ControlPlane(bin_dir=tmp_path)
    with pytest.raises(controlplane.ControlPlaneError, match="kube-apiserver.*build.sh"):
        cp.start()


def test_cli_prints_help() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "hack/control-plane/controlplane.py"), "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "up" in out.stdout and "down" in out.stdout
