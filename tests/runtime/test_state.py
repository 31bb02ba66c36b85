import threading

import pytest

from lsml.state import MemoryState, SqliteState, make_state

pytestmark = pytest.mark.unit


@pytest.fixture(params=["memory", "sqlite"])
def state(request, tmp_path):
    return MemoryState() if request.param == "memory" else SqliteState(tmp_path / "s.sqlite3")


def test_values_round_trip_per_project(state):
    state.set("1", "label_config", "<View/>")
    state.set("1", "extra", {"a": [1, 2]})
    state.set("2", "label_config", "<Other/>")
    assert state.get("1", "label_config") == "<View/>"
    assert state.get("1", "extra") == {"a": [1, 2]}
    assert state.get("2", "label_config") == "<Other/>"
    assert state.has("1", "extra") and not state.has("3", "extra")
    assert state.get("3", "missing", "dflt") == "dflt"
    state.delete("1", "extra")
    assert not state.has("1", "extra")
    assert state.items("2") == {"label_config": "<Other/>"}


def test_sqlite_state_is_shared_between_instances_and_threads(tmp_path):
    a = SqliteState(tmp_path / "s.sqlite3")
    b = SqliteState(tmp_path / "s.sqlite3")
    a.set("1", "k", "v")
    assert b.get("1", "k") == "v"
    errors = []

    def writer(i):
        try:
            for j in range(20):
                a.set("p", f"k{i}", j)
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors and b.get("p", "k3") == 19


def test_make_state_uses_sqlite_under_model_dir(settings):
    st = make_state(settings)
    assert isinstance(st, SqliteState)
    assert st.path.parent.parent == settings.model_dir
