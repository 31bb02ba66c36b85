"""The real node's teardown removes a pod sandbox that containerd refuses at first because a container is starting.

Loaded pass 3 of 2026-12-06 errored at the session's teardown, after every test had passed: `crictl rmp`
got "failed to remove container ...: container is in starting state, can't be removed". The kubelet,
stopped first, had been starting a container, and containerd holds that state until the start ends.

The answers of crictl are replayed here, not caused: holding a container in containerd's starting state
on demand means freezing its shim in the middle of containerd's start RPC on the session's shared node,
beside a kubelet that would act on the foreign sandbox. The replay is containerd's own message from that
pass's log. What the real node does with it end to end is covered by every realnode session's teardown
(`tests/fixtures/kubernetes.py` fails the run on any leftover).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.fixtures.kubernetes import realnode

pytestmark = pytest.mark.unit

STARTING = (
    'removing the pod sandbox "4b671f47": rpc error: code = Unknown desc = failed to remove container '
    '"7e2cf9e1": failed to set removing state for container "7e2cf9e1": container is in starting state, '
    "can't be removed"
)


class ReplayedNode(realnode.RealNode):
    """A node whose containerd refuses `rmp` for `refusals` tries (a container still starting), then removes."""

    def __init__(self, directory: Path, refusals: int) -> None:
        super().__init__(dir=directory, bin_dir=directory)
        self.socket.parent.mkdir(parents=True)
        self.socket.touch()
        self.pods = {"4b671f47", "c0ffee00"}
        self.refusals = refusals
        self.calls: list[tuple[str, ...]] = []

    def crictl(self, *args: str, check: bool = False, timeout: float = 60.0) -> subprocess.CompletedProcess:
        self.calls.append(args)
        if args[:2] == ("pods", "-q"):
            return subprocess.CompletedProcess(args, 0, "\n".join(sorted(self.pods)) + "\n", "")
        if args[0] == "rmp":
            pod = args[-1]
            if pod == "4b671f47" and self.refusals > 0:
                self.refusals -= 1
                return subprocess.CompletedProcess(args, 1, "", STARTING)
            self.pods.discard(pod)
        return subprocess.CompletedProcess(args, 0, "", "")


@pytest.fixture(autouse=True)
def no_wait_between_tries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(realnode, "REMOVE_PODS_RETRY_SECONDS", 0.0, raising=False)


def test_a_sandbox_refused_while_its_container_starts_is_removed_once_the_start_ends(tmp_path: Path) -> None:
    node = ReplayedNode(tmp_path, refusals=3)
    assert node.remove_pods() == []
    assert node.pods == set()
    assert node.calls.count(("rmp", "-f", "4b671f47")) == 4, node.calls


def test_a_sandbox_still_refused_at_the_deadline_is_reported_with_containerd_s_reason(tmp_path: Path) -> None:
    node = ReplayedNode(tmp_path, refusals=10**6)
    problems = node.remove_pods(timeout=0.0)
    assert problems == [f"crictl rmp 4b671f47: {STARTING}"]
    assert node.pods == {"4b671f47"}, "the other sandbox is removed all the same"
