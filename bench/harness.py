"""What the benchmarks share: the machine they ran on, percentiles, processes and sockets under /proc, and, for
the cluster benchmarks, the test control plane (hack/control-plane) and kubectl against it.

The benchmarks are scripts (`python bench/<name>.py`), so this module is imported from beside them.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def load_controlplane() -> ModuleType:
    """hack/control-plane/controlplane.py as a module (the pytest fixtures load it the same way)."""
    spec = importlib.util.spec_from_file_location(
        "lsml_controlplane", REPO / "hack" / "control-plane" / "controlplane.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["lsml_controlplane"] = module
    spec.loader.exec_module(module)
    return module


def kubectl(cp, *args: str, input: str | None = None, check: bool = True, timeout: float = 600) -> str:
    """kubectl against the control plane `cp`; a failure ends the benchmark with kubectl's message."""
    proc = subprocess.run(
        [str(Path(cp.bin_dir) / "kubectl"), f"--kubeconfig={cp.kubeconfig}", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


def loadavg() -> list[float]:
    """1/5/15-minute load average: printed next to every figure (the machine is shared)."""
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict:
    """What the figures were measured on."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "loadavg_start": loadavg(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "openblas_env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS")},
    }


def proc_stats() -> dict[int, list[str]]:
    """pid -> the /proc/<pid>/stat fields after "pid (comm)": state ppid pgrp ... utime(11) stime(12)."""
    stats = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            stats[int(stat.parent.name)] = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
    return stats


def process_tree(root: int, stats: dict[int, list[str]] | None = None) -> list[int]:
    """`root` and every live process below it (`label-studio-ml start` puts each child in its own group)."""
    stats = proc_stats() if stats is None else stats
    children: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def socket_inodes(pid: int) -> set[str]:
    """Inodes of the sockets process `pid` has open (empty when it is gone)."""
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def percentiles(samples_s: list[float]) -> dict:
    """p50/p95/p99/max in ms of a list of durations in seconds (nearest-rank)."""
    if not samples_s:
        return {"count": 0}
    xs = sorted(samples_s)

    def rank(q: float) -> float:
        return xs[min(len(xs) - 1, max(0, int(round(q * len(xs) + 0.5)) - 1))] * 1e3

    return {"count": len(xs), "p50_ms": rank(0.50), "p95_ms": rank(0.95), "p99_ms": rank(0.99), "max_ms": xs[-1] * 1e3}


def histogram_buckets(metrics_text: str, metric: str, label: str) -> dict[float, float]:
    """Cumulative buckets (``le`` bound -> count) of one histogram in a Prometheus text exposition: its series
    whose labels include ``label`` (e.g. ``'route="/webhook"'``), summed over their other labels (processes,
    priority levels, request types)."""
    buckets: dict[float, float] = {}
    prefix = f"{metric}_bucket{{"
    for line in metrics_text.splitlines():
        if line.startswith(prefix) and label in line and 'le="' in line:
            le = line.split('le="', 1)[1].split('"', 1)[0]
            bound = float("inf") if le == "+Inf" else float(le)
            buckets[bound] = buckets.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    return buckets


def failed_requests(rounds: list[dict]) -> dict[str, int]:
    """Socket errors plus non-2xx answers of every wrk cell (`round["cells"][name]`) that had any."""
    return {
        k: c.get("errors", 0) + c.get("non_2xx", 0)
        for r in rounds
        for k, c in r["cells"].items()
        if c.get("errors") or c.get("non_2xx")
    }
