"""A PyTorch training running in the embedded runner as the interpreter exits: the process exits cleanly.

Why here: this is what the reference timeseries_segmenter example's own tests hit (their /webhook test leaves
an LSTM training running as pytest exits). Python finalizes around daemon threads, and a training thread
inside PyTorch then aborts the whole process ("terminate called without an active exception", exit 134).
lsml's exit wait (lsml.training.exit_wait) abandons and stops it first. Runs with .venv-compat-torch's
interpreter (tests/compat/conftest.py); the fit never ends by itself, so the outcome does not hang on timing.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from lsml.store import LocalModelStore
from tests.fixtures.apps import TEXT_CONFIG

SCRIPT = r"""
import logging, sys, threading
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
import torch
from lsml import LabelStudioMLBase
from lsml.settings import Settings
from lsml.training import EmbeddedQueue, TrainingRequest

STARTED = threading.Event()


class TrainsForever(LabelStudioMLBase):
    def fit(self, event, data, **kwargs):
        net = torch.nn.LSTM(8, 64, batch_first=True)
        optimizer = torch.optim.Adam(net.parameters())
        x = torch.randn(64, 50, 8)
        STARTED.set()
        try:
            while True:
                out, _ = net(x)
                loss = out.pow(2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        except BaseException as exc:
            print(f"fit saw {type(exc).__name__}", flush=True)
            raise


queue = EmbeddedQueue(TrainsForever, Settings.from_env())
queue.submit(TrainingRequest("1", "START_TRAINING", {}, CONFIG))
assert STARTED.wait(120), "the fit did not start"
print("main returns", flush=True)
"""


def test_a_torch_fit_running_at_exit_is_abandoned_and_stopped_and_the_process_exits_0(compat_torch_python, tmp_path):
    script = tmp_path / "exiting.py"
    script.write_text(SCRIPT.replace("CONFIG", repr(TEXT_CONFIG)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LSML_", "REDIS_URL", "MODEL_DIR"))}
    env.update(MODEL_DIR=str(tmp_path / "models"), LSML_BACKEND_DIR=str(tmp_path), LSML_FIT_EXIT_WAIT="2")
    done = subprocess.run(
        [compat_torch_python, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert "terminate called" not in done.stderr, done.stderr[-3000:]
    assert done.returncode == 0, done.stderr[-3000:]
    assert "main returns" in done.stdout and "fit saw FitStopped" in done.stdout
    assert "of project 1 abandoned as the process exited (LSML_FIT_EXIT_WAIT=2s)" in done.stderr
    assert "its fit was stopped" in done.stderr
    assert LocalModelStore(Path(tmp_path / "models")).versions("1") == []
