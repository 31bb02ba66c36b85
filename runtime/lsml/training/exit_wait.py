"""What becomes of a training still running in this process when the interpreter exits.

Without Redis, training runs in a daemon thread of the server process (`EmbeddedQueue`). Python does not
wait for daemon threads at exit: it finalizes around them, and a thread that is inside native code then
(PyTorch's, say) can abort the whole process ("terminate called without an active exception", exit 134)
when it next needs the interpreter. So the embedded runner calls `finish_fits` at exit (an `atexit`
handler), which

1. waits up to LSML_FIT_EXIT_WAIT seconds for every running training to finish and publish;
2. abandons those that did not: their publish is refused (a model version never appears half-way through
   a shutdown) and a warning says so;
3. stops them, raising `FitStopped` inside the fit (like Ctrl-C: its `finally` blocks run), and gives
   them as long again to return, so no training thread is left running when the interpreter finalizes.
   A thread blocked in native code that never returns to Python cannot be stopped; the warning says that
   too, and the process exits around it as before.

Trainings that LSML_FIT_TIMEOUT already abandoned are stopped at once: nothing they produce is kept.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from lsml.training.deadline import FitStopped, FitThread, running_fits

logger = logging.getLogger(__name__)

FINISHED = "finished"  # returned (and published, if it did) within the wait
ABANDONED = "abandoned"  # past the wait: refused its publish, then stopped
LEFT_RUNNING = "left running"  # abandoned, and still in native code after as long again


@dataclass(frozen=True)
class ExitOutcome:
    label: str
    outcome: str


def finish_fits(wait: float, fits: list[FitThread] | None = None, stop_wait: float | None = None) -> list[ExitOutcome]:
    """Wait up to `wait` s for this process's running trainings (or `fits`); abandon and stop the rest.

    A stopped training gets `stop_wait` s (default: `wait` again) to return.
    """
    stop_wait = wait if stop_wait is None else stop_wait
    fits = running_fits() if fits is None else [fit for fit in fits if not fit.wait(0)]
    if not fits:
        return []
    live = [fit for fit in fits if not fit.abandoned]
    if live:
        logger.info(
            "the process is exiting: waiting up to %gs (LSML_FIT_EXIT_WAIT) for %s to finish",
            wait,
            ", ".join(fit.label for fit in live),
        )
    deadline = time.monotonic() + wait
    outcomes: list[ExitOutcome] = []
    to_stop: list[FitThread] = [fit for fit in fits if fit.abandoned]  # LSML_FIT_TIMEOUT's: nothing to wait for
    for fit in live:
        if fit.wait(max(0.0, deadline - time.monotonic())):
            logger.info("%s finished before the process exited%s", fit.label, _published(fit))
            outcomes.append(ExitOutcome(fit.label, FINISHED))
        elif fit.abandon(FitStopped("the process exited before the training finished: nothing is published")):
            to_stop.append(fit)
        elif fit.wait(wait):  # it had begun publishing: let that finish, within as long again
            logger.info("%s finished publishing before the process exited%s", fit.label, _published(fit))
            outcomes.append(ExitOutcome(fit.label, FINISHED))
        else:
            logger.warning("%s was still publishing %gs after the process began exiting; left to it", fit.label, wait)
            outcomes.append(ExitOutcome(fit.label, LEFT_RUNNING))
    for fit in to_stop:
        fit.stop()
    stop_deadline = time.monotonic() + stop_wait
    for fit in to_stop:
        stopped = fit.wait(max(0.0, stop_deadline - time.monotonic()))
        why = (
            f"abandoned as the process exited (LSML_FIT_EXIT_WAIT={wait:g}s)"
            if fit in live
            else "abandoned earlier at LSML_FIT_TIMEOUT and still running as the process exited"
        )
        if stopped:
            logger.warning("%s %s: nothing it produces is published; its fit was stopped", fit.label, why)
        else:
            logger.warning(
                "%s %s: nothing it produces is published; its thread did not return to Python within %gs more "
                "and is left to the process's end",
                fit.label,
                why,
                stop_wait,
            )
        outcomes.append(ExitOutcome(fit.label, ABANDONED if stopped else LEFT_RUNNING))
    return outcomes


def _published(fit: FitThread) -> str:
    """', model version v3 published' when the training returned run_training's summary of a publish."""
    try:
        result = fit.result()
    except BaseException:  # noqa: BLE001 - it failed: the runner reports why
        return " (it failed)"
    if isinstance(result, dict) and result.get("published"):
        return f", model version {result.get('model_version')} published"
    return ""
