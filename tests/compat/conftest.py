"""The interpreters tests/compat runs the reference examples with, each made by its hack/compat script.

hack/test exports them (LSML_COMPAT_PYTHON, LSML_COMPAT_TORCH_PYTHON); run by hand without them, a fixture
runs the script itself (minutes the first time, warm about a second). A script that fails, or a variable
naming no interpreter, fails the tests that need it: nothing here skips.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _interpreter(variable: str, script: str, timeout: float) -> str:
    python = os.environ.get(variable)
    if not python:
        done = subprocess.run([str(REPO / script)], capture_output=True, text=True, timeout=timeout, cwd=REPO)
        assert done.returncode == 0, f"{script} failed (exit {done.returncode}):\n{done.stderr[-3000:]}"
        python = done.stdout.strip().splitlines()[-1]
    assert os.access(python, os.X_OK), f"{variable}={python}: no such interpreter (run {script})"
    return python


@pytest.fixture(scope="session")
def compat_python() -> str:
    """.venv-compat's interpreter: lsml[compat], not the reference SDK (hack/compat/venv.sh)."""
    return _interpreter("LSML_COMPAT_PYTHON", "hack/compat/venv.sh", timeout=1800)


@pytest.fixture(scope="session")
def compat_torch_python() -> str:
    """.venv-compat-torch's interpreter: that and PyTorch, for timeseries_segmenter (hack/compat/torch-venv.sh)."""
    return _interpreter("LSML_COMPAT_TORCH_PYTHON", "hack/compat/torch-venv.sh", timeout=3600)
