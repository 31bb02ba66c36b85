"""What the cluster benchmarks share: the test control plane (hack/control-plane) and kubectl against it.

The benchmarks are scripts (`python bench/<name>.py`), so this module is imported from beside them.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def load_controlplane() -> ModuleType:
    """hack/control-plane/controlplane.py as a module (the pytest fixtures load it the same way)."""
    spec = importlib.util.spec_from_file_location("lsml_controlplane", REPO / "hack" / "control-plane" / "controlplane.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["lsml_controlplane"] = module
    spec.loader.exec_module(module)
    return module


def kubectl(cp, *args: str, input: str | None = None, check: bool = True, timeout: float = 600) -> str:
    """kubectl against the control plane `cp`; a failure ends the benchmark with kubectl's message."""
    proc = subprocess.run([str(Path(cp.bin_dir) / "kubectl"), f"--kubeconfig={cp.kubeconfig}", *args],
                          input=input, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout
