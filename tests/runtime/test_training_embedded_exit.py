"""A training running in the embedded runner when the interpreter exits (lsml.training.exit_wait).

Each test runs a real Python process that submits a real training (run_training, a LocalModelStore under
tmp_path) to an EmbeddedQueue whose fit blocks on something this test controls, and then returns from its
main module while the fit runs. Nothing here waits for time to pass: the process says (on stderr) that it
began its exit wait before the test releases the fit, and a fit that is to be abandoned never ends by itself.
"""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from lsml.store import LocalModelStore
from lsml.training import deadline
from lsml.training.exit_wait import ABANDONED, FINISHED, LEFT_RUNNING, finish_fits
from tests.fixtures.apps import TEXT_CONFIG
from tests.fixtures.polling import wait_for

SCRIPT = r"""
import logging, os, sys, threading
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
from lsml import LabelStudioMLBase
from lsml.settings import Settings
from lsml.training import EmbeddedQueue, TrainingRequest

STARTED = threading.Event()


class Gated(LabelStudioMLBase):
    def fit(self, event, data, **kwargs):
        STARTED.set()
        if os.environ["FIT"] == "stdin":  # returns when the test writes a line (blocked in native code until then)
            line = sys.stdin.readline()
            (self.output_dir / "weights.txt").write_text(line.strip())
            return
        try:  # "python": a fit in Python that never ends by itself
            while True:
                threading.Event().wait(0.01)
        except BaseException as exc:
            print(f"fit saw {type(exc).__name__}", flush=True)
            raise


queue = EmbeddedQueue(Gated, Settings.from_env())
queue.submit(TrainingRequest("1", "START_TRAINING", {}, CONFIG))
queue.submit(TrainingRequest("2", "START_TRAINING", {}, CONFIG))  # queued behind it: never starts
assert STARTED.wait(60), "the fit did not start"
print("main returns", flush=True)
sys.exit(int(os.environ["EXIT_CODE"]))
"""


class Exiting:
    """The process of SCRIPT, with its stderr read line by line as it comes."""

    def __init__(self, tmp_path: Path, fit: str, exit_wait: float, exit_code: int = 0) -> None:
        script = tmp_path / "exiting.py"
        script.write_text(SCRIPT.replace("CONFIG", repr(TEXT_CONFIG)))
        self.model_dir = tmp_path / "models"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LSML_", "REDIS_URL", "MODEL_DIR"))}
        env.update(
            MODEL_DIR=str(self.model_dir),
            LSML_BACKEND_DIR=str(tmp_path),
            LSML_FIT_EXIT_WAIT=str(exit_wait),
            FIT=fit,
            EXIT_CODE=str(exit_code),
        )
        self.proc = subprocess.Popen(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for_line(self, needle: str, timeout: float = 60.0) -> None:
        while True:
            line = self.lines.get(timeout=timeout)
            if line is None:
                raise AssertionError(f"the process ended before saying {needle!r}:\n{''.join(self.stderr)}")
            self.stderr.append(line)
            if needle in line:
                return

    def finish(self, timeout: float = 60.0) -> tuple[int, str, str]:
        """(exit code, stdout, the whole stderr); stdin is closed only once the process has exited."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.wait(timeout=timeout)  # stdout is a few short lines: the pipe's buffer holds them
        if not self.proc.stdin.closed:
            self.proc.stdin.close()
        stdout = self.proc.stdout.read()
        self.proc.stdout.close()
        while (line := self.lines.get(timeout=timeout)) is not None:
            self.stderr.append(line)
        return self.proc.returncode, stdout, "".join(self.stderr)


def test_a_fit_that_finishes_within_the_exit_wait_publishes_and_the_process_exits_0(tmp_path):
    exiting = Exiting(tmp_path, fit="stdin", exit_wait=120)
    exiting.wait_for_line("the process is exiting: waiting up to 120s (LSML_FIT_EXIT_WAIT) for training job")
    assert exiting.proc.stdin is not None
    exiting.proc.stdin.write("trained weights\n")
    exiting.proc.stdin.close()
    code, stdout, stderr = exiting.finish()
    assert code == 0, stderr
    assert "main returns" in stdout
    assert "of project 1 finished before the process exited, model version v1 published" in stderr
    assert "abandoned" not in stderr
    store = LocalModelStore(exiting.model_dir)
    current = store.current("1")
    assert current is not None and current.name == "v1"
    assert (current.path / "weights.txt").read_text() == "trained weights"
    assert store.versions("2") == []  # queued when the process began exiting: not started


def test_a_fit_past_the_exit_wait_is_abandoned_stopped_and_the_exit_code_kept(tmp_path):
    # 2 s: spent whole on the wait (the fit never ends by itself); the stop then lands within 10 ms of Python
    exiting = Exiting(tmp_path, fit="python", exit_wait=2, exit_code=3)
    code, stdout, stderr = exiting.finish()
    assert code == 3, stderr  # the process's own exit code, not an abort (134) nor one chosen by lsml
    assert "main returns" in stdout and "fit saw FitStopped" in stdout
    assert "waiting up to 2s (LSML_FIT_EXIT_WAIT) for training job" in stderr
    assert (
        "of project 1 abandoned as the process exited (LSML_FIT_EXIT_WAIT=2s): nothing it produces is "
        "published; its fit was stopped"
    ) in stderr
    store = LocalModelStore(exiting.model_dir)
    assert store.versions("1") == [] and store.current("1") is None
    assert not [p for p in store.project_dir("1").iterdir() if p.name.startswith(".staging")]


def test_a_fit_blocked_in_native_code_is_abandoned_and_left_and_the_process_exits_0(tmp_path):
    exiting = Exiting(tmp_path, fit="stdin", exit_wait=0.5)
    code, stdout, stderr = exiting.finish()  # the fit's stdin is never written
    assert code == 0, stderr
    assert (
        "abandoned as the process exited (LSML_FIT_EXIT_WAIT=0.5s): nothing it produces is published; its thread "
        "did not return to Python within 0.5s more and is left to the process's end"
    ) in stderr
    assert LocalModelStore(exiting.model_dir).versions("1") == []


# ---- finish_fits in this process, on FitThreads of its own ------------------------------------------------


@pytest.mark.unit
def test_finish_fits_returns_when_the_fit_finishes_within_the_wait():
    gate = threading.Event()

    class ReleaseOnWait(logging.Handler):  # the fit ends once finish_fits has begun to wait for it
        def emit(self, record: logging.LogRecord) -> None:
            if "waiting up to 3600s" in record.getMessage():
                gate.set()

    def fit() -> dict:
        assert gate.wait(60)
        return {"published": True, "model_version": "v7"}

    run = deadline.FitThread("a gated fit", fit).start()
    handler, log = ReleaseOnWait(), logging.getLogger("lsml.training.exit_wait")
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        outcomes = finish_fits(3600, fits=[run])
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    assert [(o.label, o.outcome) for o in outcomes] == [("a gated fit", FINISHED)]
    assert run.result() == {"published": True, "model_version": "v7"} and not run.abandoned


@pytest.mark.unit
def test_finish_fits_abandons_and_stops_a_python_fit_past_the_wait():
    entered = threading.Event()

    def fit() -> None:
        entered.set()
        while True:
            threading.Event().wait(0.05)

    run = deadline.FitThread("a looping fit", fit).start()
    assert entered.wait(10)
    assert [o.outcome for o in finish_fits(0.01, fits=[run], stop_wait=60)] == [ABANDONED]
    with pytest.raises(deadline.FitStopped):
        run.result()
    assert run.abandoned and run not in deadline.running_fits()


@pytest.mark.unit
def test_finish_fits_stops_a_fit_lsml_fit_timeout_abandoned_without_waiting_for_it():
    entered, gate = threading.Event(), threading.Event()

    def fit() -> str:
        entered.set()
        while not gate.wait(0.05):
            pass
        return "late"

    run = deadline.FitThread("a timed-out fit", fit)
    with pytest.raises(deadline.FitTimeout):
        run.run(0.0)  # LSML_FIT_TIMEOUT passed at once: abandoned, still running
    assert entered.wait(10) and run in deadline.running_fits()
    outcomes = finish_fits(3600, fits=[run], stop_wait=60)  # the wait is not spent on it: it is stopped at once
    assert [o.outcome for o in outcomes] == [ABANDONED]
    with pytest.raises(deadline.FitStopped):
        run.result()


@pytest.mark.unit
def test_a_fit_blocked_in_native_code_is_reported_left_running():
    gate = threading.Event()
    run = deadline.FitThread("a blocked fit", gate.wait).start()  # Event.wait(): a lock acquire, no bytecode

    def blocked_in_wait() -> bool:
        """The fit thread is inside the lock acquire (a thread still on its way there runs bytecode, meets the stop
        at once and would be ABANDONED: not what this test is about)."""
        frame = sys._current_frames().get(run._thread.ident or -1)
        return frame is not None and frame.f_code is threading.Condition.wait.__code__

    wait_for(blocked_in_wait, 10, 0.005, what="the fit to block in Event.wait")
    try:
        assert [o.outcome for o in finish_fits(0.01, fits=[run], stop_wait=0.01)] == [LEFT_RUNNING]
        assert run.abandoned and not run.wait(0)
    finally:
        gate.set()
    assert run.wait(10)  # released, it returns to Python and meets the FitStopped it was sent
    with pytest.raises(deadline.FitStopped):
        run.result()
