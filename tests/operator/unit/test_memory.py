"""The malloc arena cap of the operator process (lsml_operator.memory): set on glibc, left to the environment."""

from __future__ import annotations

import platform

import pytest

from lsml_operator.memory import limit_malloc_arenas

pytestmark = pytest.mark.unit


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt(M_ARENA_MAX) is glibc's")
def test_the_arena_cap_is_set_on_glibc_unless_the_environment_sets_it(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_malloc_arenas() is True
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False, "the operator's admin chose: glibc reads the variable itself"
