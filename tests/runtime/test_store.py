import os
import threading

import pytest

from lsml.store import LocalModelStore, ModelStore, make_store

pytestmark = pytest.mark.unit


@pytest.fixture
def store(tmp_path):
    return LocalModelStore(tmp_path / "models")


def publish(store, project, content="x", metadata=None):
    with store.staging(project) as out:
        (out / "model.bin").write_text(content)
        return store.publish(project, out, metadata)


def test_store_satisfies_the_protocol(store, settings):
    assert isinstance(store, ModelStore)
    assert isinstance(make_store(settings), LocalModelStore)


def test_publish_numbers_versions_and_moves_current(store):
    assert store.current("1") is None and store.pointer("1") is None and store.versions("1") == []
    v1 = publish(store, "1", "a", {"event": "START_TRAINING"})
    v2 = publish(store, "1", "b")
    assert (v1.name, v2.name) == ("v1", "v2")
    current = store.current("1")
    assert current.name == "v2" and (current.path / "model.bin").read_text() == "b"
    assert [v.name for v in store.versions("1")] == ["v1", "v2"]
    assert store.versions("1")[0].metadata == {"event": "START_TRAINING"}
    assert os.path.islink(store.project_dir("1") / "current")
    assert store.pointer("1") == os.path.join("versions", "000002")
    assert store.current("2") is None


def test_projects_do_not_share_versions(store):
    publish(store, "1")
    assert store.current("2") is None


def test_a_failed_fit_leaves_no_version(store):
    with pytest.raises(RuntimeError):
        with store.staging("1") as out:
            (out / "half").write_text("x")
            raise RuntimeError("fit crashed")
    assert store.versions("1") == [] and store.current("1") is None
    leftovers = [p.name for p in store.project_dir("1").iterdir() if p.name.startswith(".staging")]
    assert leftovers == []


def test_prune_keeps_the_newest_and_never_the_current(store):
    for i in range(5):
        publish(store, "1", str(i))
    removed = store.prune("1", keep=2)
    assert [v.name for v in removed] == ["v1", "v2", "v3"]
    assert [v.name for v in store.versions("1")] == ["v4", "v5"]
    # point current at an old version: prune must keep it
    link = store.project_dir("1") / "tmp-link"
    os.symlink(os.path.join("versions", "000004"), link)
    os.replace(link, store.project_dir("1") / "current")
    publish(store, "1")
    publish(store, "1")
    os.symlink(os.path.join("versions", "000004"), link)
    os.replace(link, store.project_dir("1") / "current")
    store.prune("1", keep=1)
    assert [v.name for v in store.versions("1")] == ["v4", "v7"]


def test_concurrent_publishes_get_distinct_numbers(store):
    names = []
    lock = threading.Lock()

    def worker():
        v = publish(store, "1")
        with lock:
            names.append(v.name)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(names, key=lambda n: int(n[1:])) == [f"v{i}" for i in range(1, 9)]


def test_publish_refuses_a_dir_not_staged_for_the_project(store, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    with pytest.raises(ValueError):
        store.publish("1", other)


@pytest.mark.parametrize("bad", ["", "../x", ".hidden", "a/b"])
def test_invalid_project_keys_are_refused(store, bad):
    with pytest.raises(ValueError):
        store.project_dir(bad)


def test_projects_lists_projects_with_versions(store):
    assert store.projects() == []
    publish(store, "2")
    publish(store, "10")
    with store.staging("3"):
        pass
    assert store.projects() == ["10", "2"]
