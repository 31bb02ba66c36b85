"""One exception root for the runtime (`LsmlError`) and one "Redis is unavailable" type (issue 23 item 2)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import lsml
from lsml.errors import LsmlError, LsmlInterrupt, RedisUnavailable

pytestmark = pytest.mark.unit

#: Modules not imported here: gunicorn's config module runs at import (it is a config file, no classes).
SKIPPED = {"lsml.server.gunicorn_conf"}


def lsml_exception_classes() -> list[type]:
    found = []
    for info in pkgutil.walk_packages(lsml.__path__, "lsml."):
        if info.name in SKIPPED:
            continue
        module = importlib.import_module(info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__ == info.name:
                found.append(value)
    return found


def test_every_exception_lsml_defines_derives_from_lsml_error():
    classes = lsml_exception_classes()
    assert len(classes) > 15, classes  # the walk found the modules
    assert [c.__qualname__ for c in classes if not issubclass(c, (LsmlError, LsmlInterrupt))] == []


def test_what_lsml_raises_into_running_code_is_no_exception_a_model_could_swallow():
    """An interrupt (a fit stopped at exit) must pass a model's `except Exception:` (it would train on)."""
    interrupts = [c for c in lsml_exception_classes() if issubclass(c, LsmlInterrupt)]
    assert interrupts, "no interrupt class found: the test would prove nothing"
    assert [c.__qualname__ for c in interrupts if issubclass(c, Exception)] == []


@pytest.mark.parametrize(
    ("name", "base"),
    [
        ("lsml.backend_dir.BackendDirError", ValueError),
        ("lsml.label_config.LabelConfigError", ValueError),
        ("lsml.local_files.LocalFileRefused", PermissionError),
        ("lsml.training.queue.InvalidTrainingRequest", ValueError),
        ("lsml.prelabel_jobs.PrelabelJobsFull", RuntimeError),
        ("lsml.sdk.SdkMissing", ImportError),
        ("lsml.errors.RedisUnavailable", RuntimeError),
    ],
)
def test_the_built_in_bases_callers_catch_are_kept(name, base):
    module, _, attr = name.rpartition(".")
    assert issubclass(getattr(importlib.import_module(module), attr), base)


def test_the_three_redis_unavailable_names_are_one_type():
    from lsml.redis_outage import RedisOutage
    from lsml.state import StateUnavailable
    from lsml.training.queue import QueueUnavailable

    assert StateUnavailable is QueueUnavailable is RedisOutage is RedisUnavailable
    assert RedisUnavailable("x", code="state_unavailable").code == "state_unavailable"
