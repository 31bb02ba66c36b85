"""A training runs niced (`LSML_TRAINING_NICE`), and so does what its fit starts; serving threads do not.

The fit below reads the niceness of its own thread, of a thread and of a process it starts, and of the
thread that stands for the server's request threads, while it runs (no timing involved).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from lsml import LabelStudioMLBase
from lsml.training import TrainingRequest, run_training
from lsml.training.priority import training_priority


def thread_nice(tid: int | None = None) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid or threading.get_native_id())


class PriorityProbe(LabelStudioMLBase):
    seen: dict = {}
    serving_tid: int = 0

    def fit(self, event, data, **kwargs):
        seen = type(self).seen
        seen["fit"] = thread_nice()
        helper: dict = {}
        worker = threading.Thread(target=lambda: helper.setdefault("nice", thread_nice()))
        worker.start()
        worker.join()
        seen["fit_thread"] = helper["nice"]
        child = subprocess.run([sys.executable, "-c", "import os; print(os.nice(0))"], capture_output=True, text=True)
        seen["fit_process"] = int(child.stdout)
        seen["serving"] = thread_nice(type(self).serving_tid)
        (self.output_dir / "fit.json").write_text("{}")


def train_in_a_thread(settings, text_config) -> dict:
    """run_training on a thread of its own (as the embedded queue does), with this thread as the server's."""
    PriorityProbe.seen = {}
    PriorityProbe.serving_tid = threading.get_native_id()
    outcome: dict = {}

    def train() -> None:
        outcome["result"] = run_training(
            PriorityProbe, TrainingRequest("1", "START_TRAINING", {}, text_config), settings
        )
        outcome["after"] = thread_nice()

    trainer = threading.Thread(target=train)
    trainer.start()
    trainer.join(timeout=60)
    assert not trainer.is_alive() and outcome["result"]["published"], outcome
    return outcome


def test_the_fit_and_what_it_starts_run_niced_and_serving_threads_do_not(settings, text_config):
    serving_before = thread_nice()
    wanted = serving_before + 5  # above whatever niceness the test run itself has
    assert wanted <= 19, f"the test run is niced to {serving_before}: nothing is left to show"
    outcome = train_in_a_thread(settings.replace(training_nice=wanted), text_config)
    seen = PriorityProbe.seen
    assert seen["fit"] == wanted
    assert seen["fit_thread"] == seen["fit"] and seen["fit_process"] == seen["fit"]
    assert seen["serving"] == serving_before
    if os.geteuid() == 0:  # only a privileged process may lower niceness again
        assert outcome["after"] == serving_before


def test_nice_zero_leaves_the_training_at_the_servers_priority(settings, text_config):
    serving_before = thread_nice()
    train_in_a_thread(settings.replace(training_nice=0), text_config)
    assert PriorityProbe.seen["fit"] == serving_before == PriorityProbe.seen["fit_process"]


def test_a_thread_already_nicer_than_asked_is_left_as_it_is():
    def body(out: dict) -> None:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 15)
        with training_priority(10) as used:
            out["used"], out["inside"] = used, thread_nice()

    out: dict = {}
    t = threading.Thread(target=body, args=(out,))
    t.start()
    t.join()
    assert out == {"used": 15, "inside": 15}


@pytest.mark.parametrize("value", ["-1", "ten"])
def test_a_bad_training_nice_is_refused_naming_the_variable(value):
    from lsml.settings import Settings

    with pytest.raises(ValueError, match="LSML_TRAINING_NICE"):
        Settings.from_env(env={"LSML_TRAINING_NICE": value})
