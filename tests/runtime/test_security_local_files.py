"""Issue 10 item 5: task data cannot make a model read local files outside LSML_LOCAL_FILES_ROOTS."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lsml.model import BuildContext, LabelStudioMLBase, build_model
from lsml.settings import Settings
from lsml.state import MemoryState

pytestmark = pytest.mark.unit


class Reader(LabelStudioMLBase):
    """Echoes each task's text, after preload_task_data (what a text model reading files does)."""

    def predict(self, tasks, context=None, **kwargs):
        return [{"result": [], "text": self.preload_task_data(t)["text"]} for t in tasks]


def model(settings: Settings) -> LabelStudioMLBase:
    return build_model(LabelStudioMLBase, "1", None, BuildContext(settings, MemoryState()))


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    path = outside / "secret.txt"
    path.write_text("do not read")
    return path


@pytest.fixture
def allowed(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    root.mkdir()
    (root / "ok.txt").write_text("fine")
    return root


def test_local_files_are_off_by_default(settings, secret):
    m = model(settings)
    for value in (f"file://{secret}", str(secret), "file:///etc/hostname", "/etc/hostname"):
        with pytest.raises(PermissionError, match="LSML_LOCAL_FILES_ROOTS"):
            m.get_local_path(value)
    with pytest.raises(PermissionError, match="LSML_LOCAL_FILES_ROOTS"):
        m.preload_task_data({"id": 1, "data": {"text": "file:///etc/hostname"}})


def test_files_under_a_configured_root_are_read(settings, allowed):
    m = model(settings.replace(local_files_roots=[allowed]))
    assert m.get_local_path(f"file://{allowed}/ok.txt") == str(allowed / "ok.txt")
    assert m.get_local_path(str(allowed / "ok.txt")) == str(allowed / "ok.txt")
    assert m.preload_task_data({"data": {"doc": f"file://{allowed}/ok.txt", "n": 3}}) == {"doc": "fine", "n": 3}


def test_dot_dot_and_symlinks_out_of_a_root_are_refused(settings, allowed, secret):
    (allowed / "link.txt").symlink_to(secret)
    (allowed / "linkdir").symlink_to(secret.parent, target_is_directory=True)
    m = model(settings.replace(local_files_roots=[allowed]))
    for value in (
        f"file://{allowed}/../outside/secret.txt",
        f"{allowed}/../outside/secret.txt",
        f"file://{allowed}/link.txt",
        str(allowed / "linkdir" / "secret.txt"),
        f"file://{allowed}-sibling/x",
        f"file://remote-host{secret}",
    ):
        with pytest.raises(PermissionError):
            m.get_local_path(value)


def test_roots_come_from_the_environment(tmp_path, allowed):
    other = tmp_path / "other"
    env = {"LSML_LOCAL_FILES_ROOTS": f"{allowed}{os.pathsep}{other}{os.pathsep}"}
    assert Settings.from_env(env=env, backend_dir=tmp_path).local_files_roots == (allowed.resolve(), other.resolve())
    assert Settings.from_env(env={}, backend_dir=tmp_path).local_files_roots == ()


def test_predict_with_a_file_url_answers_a_model_error_without_the_contents(serve, secret, text_config):
    _, client = serve(Reader)
    r = client.post(
        "/predict", json={"tasks": [{"id": 1, "data": {"text": f"file://{secret}"}}], "label_config": text_config}
    )
    assert r.status_code == 500 and r.get_json()["error"] == "model_error"
    assert "do not read" not in r.get_data(as_text=True)
