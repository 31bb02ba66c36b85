"""Training: the queue interface, the job function, and the runners.

`make_queue(settings, model_ref)` returns the embedded runner when
`REDIS_URL` is unset, else the RQ queue.
"""

from __future__ import annotations

from collections.abc import Callable

from lsml.model import ModelRef
from lsml.settings import Settings
from lsml.training.embedded import EmbeddedQueue
from lsml.training.job import run_training
from lsml.training.queue import TrainingQueue, TrainingRequest

__all__ = ["EmbeddedQueue", "TrainingQueue", "TrainingRequest", "make_queue", "run_training"]


def make_queue(
    settings: Settings, model_ref: ModelRef | None = None, on_finished: Callable[[str, dict], None] | None = None
) -> TrainingQueue:
    """The queue for these settings: RQ when `REDIS_URL` is set, else an in-process thread."""
    model_ref = model_ref if model_ref is not None else settings.model
    if model_ref is None:
        raise ValueError("make_queue needs a model reference (argument or LSML_MODEL)")
    if settings.redis_url:
        from lsml.training.rq_queue import RQQueue  # only with REDIS_URL

        return RQQueue(model_ref, settings)
    return EmbeddedQueue(model_ref, settings, on_finished=on_finished)
