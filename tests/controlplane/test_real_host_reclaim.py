"""A real node's host network outlives a run killed before its teardown; the next node takes it back.

A CI run on a machine where an earlier run was SIGKILLed found ``LSML-NODE-FORWARD``
already there and every real-node test errored at setup ("iptables: Chain
already exists"); the run before had found ``lsml0`` already there. These tests
cause exactly that: a process sets the host network up and is SIGKILLed, then a
new node starts. Each scenario runs in a network and mount namespace of its own
(``unshare --net --mount``, with /sys mounted again so it shows that namespace's
interfaces), with its own owner record, so the real node a session may be
running beside it is never touched and never seen.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [pytest.mark.kubernetes, pytest.mark.realnode]

HACK = Path(__file__).resolve().parents[2] / "hack" / "control-plane"

PRELUDE = textwrap.dedent(
    """
    import json, os, signal, subprocess, sys, time
    from pathlib import Path
    sys.path.insert(0, HACK)
    import realnode

    def net():
        return realnode.HostNetwork(record=RECORD, home=HOME)

    def owner(then):
        # A separate process sets the network up, then is SIGKILLed (or waits, to stay the live owner).
        code = (
            "import os, signal, sys, time; sys.path.insert(0, %r); import realnode; "
            "realnode.HostNetwork(record=%r, home=%r).setup(); print('up', flush=True); " % (HACK, RECORD, HOME)
            + then
        )
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "up"
        return proc

    def state():
        chains = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True, check=True).stdout
        return {
            "bridge": Path("/sys/class/net/" + realnode.BRIDGE).exists(),
            "chain": ("-N " + realnode.FORWARD_CHAIN) in chains,
            "jump": ("-A FORWARD -j " + realnode.FORWARD_CHAIN) in chains,
            "ip_forward": Path("/proc/sys/net/ipv4/ip_forward").read_text().strip(),
            "record": Path(RECORD).exists(),
        }

    Path("/proc/sys/net/ipv4/ip_forward").write_text("0\\n")
    result = {}
    """
)


def run_scenario(tmp_path: Path, body: str) -> dict:
    """Run ``body`` (after PRELUDE) as root in fresh network and mount namespaces; returns its ``result``."""
    for tool in ("unshare", "iptables", "ip", "mount"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: hack/install-system-deps.sh installs what the real node needs")
    home = tmp_path / "cluster"
    home.mkdir()
    script = tmp_path / "scenario.py"
    script.write_text(
        f"HACK = {str(HACK)!r}\nRECORD = {str(tmp_path / 'owner.json')!r}\nHOME = {str(home)!r}\n"
        + PRELUDE
        + textwrap.dedent(body)
        + "\nprint('RESULT ' + json.dumps(result))\n"
    )
    proc = subprocess.run(
        [
            "unshare",
            "--net",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            'mount -t sysfs sysfs /sys && exec "$0" "$1"',
            sys.executable,
            str(script),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"scenario failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return json.loads(lines[-1][len("RESULT ") :])


def test_a_node_killed_before_teardown_is_taken_back_by_the_next_one(tmp_path):
    result = run_scenario(
        tmp_path,
        """
        # A shim of the killed node's containerd: it outlives containerd and must not pass for a live node.
        shim = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(300)", "containerd-shim-runc-v2",
             "-address", HOME + "/node/containerd/containerd.sock"],
            start_new_session=True,
        )
        killed = owner("os.kill(os.getpid(), signal.SIGKILL)")
        killed.wait()
        result["left"] = state()
        second = net()
        second.setup()
        result["reclaimed"] = second.reclaimed
        result["up"] = state()
        try:
            shim.wait(timeout=10)
            result["shim"] = "stopped"
        except subprocess.TimeoutExpired:
            shim.kill()
            result["shim"] = "still running"
        result["after_teardown_problems"] = second.teardown()
        result["down"] = state()
        """,
    )
    # The kill left everything behind: the next setup would have failed on `ip link add` or `iptables -N`.
    assert result["left"] == {"bridge": True, "chain": True, "jump": True, "ip_forward": "1", "record": True}
    assert len(result["reclaimed"]) == 1 and "owner pid" in result["reclaimed"][0]
    assert result["up"] == {"bridge": True, "chain": True, "jump": True, "ip_forward": "1", "record": True}
    assert result["shim"] == "stopped"
    assert result["after_teardown_problems"] == []
    # The new node's teardown restores what was there before the killed one: ip_forward back to 0.
    assert result["down"] == {"bridge": False, "chain": False, "jump": False, "ip_forward": "0", "record": False}


def test_a_forward_chain_without_its_bridge_or_record_is_removed_before_setup(tmp_path):
    """What the CI machine had: the bridge deleted by hand after a killed run, the chain and its jump left."""
    result = run_scenario(
        tmp_path,
        """
        for argv in (["-N", realnode.FORWARD_CHAIN], ["-A", realnode.FORWARD_CHAIN, "-j", "DROP"],
                     ["-I", "FORWARD", "1", "-j", realnode.FORWARD_CHAIN]):
            subprocess.run(["iptables", "-w", *argv], check=True)
        result["left"] = state()
        node = net()
        node.setup()
        result["reclaimed"] = node.reclaimed
        rules = subprocess.run(["iptables", "-w", "-S", realnode.FORWARD_CHAIN], capture_output=True, text=True)
        result["rules"] = rules.stdout.splitlines()
        node.teardown()
        result["down"] = state()
        """,
    )
    assert result["left"]["chain"] and result["left"]["jump"] and not result["left"]["bridge"]
    assert result["reclaimed"] == [f"iptables -t filter {'LSML-NODE-FORWARD'}"]
    assert "-A LSML-NODE-FORWARD -j DROP" not in result["rules"]  # the stale rule went with its chain
    assert result["down"] == {"bridge": False, "chain": False, "jump": False, "ip_forward": "0", "record": False}


def test_a_live_node_is_refused_and_left_untouched_until_it_is_gone(tmp_path):
    result = run_scenario(
        tmp_path,
        """
        live = owner("time.sleep(300)")
        try:
            net().setup()
            result["refused"] = None
        except realnode.RealNodeError as exc:
            result["refused"] = str(exc)
        result["after_refusal"] = state()
        # Its owner gone but a process of its cluster dir still running (a detached `up`): still live.
        kubelet = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "--root-dir", HOME + "/node"])
        live.kill()
        live.wait()
        try:
            net().setup()
            result["refused_detached"] = None
        except realnode.RealNodeError as exc:
            result["refused_detached"] = str(exc)
        kubelet.kill()
        kubelet.wait()
        node = net()
        node.setup()
        result["reclaimed"] = node.reclaimed
        node.teardown()
        result["down"] = state()
        """,
    )
    assert result["refused"] and "lsml0 already exists" in result["refused"] and "its owner, pid" in result["refused"]
    assert result["after_refusal"] == {"bridge": True, "chain": True, "jump": True, "ip_forward": "1", "record": True}
    assert result["refused_detached"] and "processes of" in result["refused_detached"]
    assert len(result["reclaimed"]) == 1
    assert result["down"] == {"bridge": False, "chain": False, "jump": False, "ip_forward": "0", "record": False}
