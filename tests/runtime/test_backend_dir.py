import pytest

from lsml.backend_dir import (
    BackendDirError,
    find_model_classes,
    is_backend_dir,
    model_ref,
    read_model_constant,
    scaffold,
    split_script_spec,
)

pytestmark = pytest.mark.unit

ONE = "from lsml import LabelStudioMLBase\n\nclass Mine(LabelStudioMLBase):\n    pass\n"
TWO = (
    "import lsml\n\nclass Base(lsml.LabelStudioMLBase):\n    pass\n\n"
    "class Concrete(Base):\n    pass\n\nclass Other:\n    pass\n"
)


def write(tmp_path, text, name="m.py"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_finds_subclasses_without_importing(tmp_path):
    assert find_model_classes(write(tmp_path, ONE)) == ["Mine"]
    assert find_model_classes(write(tmp_path, TWO + "\nraise SystemExit('never executed')\n")) == ["Base", "Concrete"]


def test_split_script_spec():
    assert split_script_spec("a/b.py:Cls") == (__import__("pathlib").Path("a/b.py"), "Cls")
    assert split_script_spec("a/b.py")[1] is None


def test_scaffold_writes_a_backend_dir_and_model_ref_reads_it(tmp_path):
    target = tmp_path / "backend"
    files = scaffold(target, write(tmp_path, ONE))
    names = {p.name for p in files}
    assert {"model.py", "_wsgi.py", "requirements.txt", "Dockerfile", "docker-compose.yml", "README.md"} <= names
    assert is_backend_dir(target)
    assert read_model_constant(target / "_wsgi.py") == "model:Mine"
    assert model_ref(target, env={}) == "model:Mine"
    assert model_ref(target, env={"LSML_MODEL": "x:Y"}) == "x:Y"
    compose = (target / "docker-compose.yml").read_text()
    assert "label-studio-ml" in compose and "worker" in compose and "--appendonly" in compose


def test_scaffold_refuses_ambiguity_and_overwrites_only_with_force(tmp_path):
    two = write(tmp_path, TWO)
    with pytest.raises(BackendDirError, match="Base, Concrete"):
        scaffold(tmp_path / "b", two)
    scaffold(tmp_path / "b", two, "Concrete")
    with pytest.raises(BackendDirError, match="--force"):
        scaffold(tmp_path / "b", two, "Concrete")
    scaffold(tmp_path / "b", two, "Base", force=True)
    assert model_ref(tmp_path / "b", env={}) == "model:Base"
    with pytest.raises(BackendDirError, match="named 'Nope'"):
        scaffold(tmp_path / "c", two, "Nope")
    with pytest.raises(BackendDirError, match="no subclass"):
        scaffold(tmp_path / "d", write(tmp_path, "x = 1\n", "plain.py"))


def test_model_ref_explains_a_missing_backend(tmp_path):
    with pytest.raises(BackendDirError, match="label-studio-ml init"):
        model_ref(tmp_path, env={})
    (tmp_path / "_wsgi.py").write_text("app = None\n")
    with pytest.raises(BackendDirError, match="MODEL"):
        model_ref(tmp_path, env={})


REFERENCE_WSGI = """
import os
import logging.config
from label_studio_ml.api import init_app
{imports}

if __name__ == "__main__":
    app = init_app(model_class={argument}, basic_auth_user=None, basic_auth_pass=None)
    app.run()
else:
    app = init_app(model_class={argument})
raise SystemExit("never executed")
"""


def reference_dir(tmp_path, imports, argument, model=ONE):
    (tmp_path / "_wsgi.py").write_text(REFERENCE_WSGI.format(imports=imports, argument=argument))
    if model is not None:
        (tmp_path / "model.py").write_text(model)
    return tmp_path


@pytest.mark.parametrize(
    ("imports", "argument", "ref"),
    [
        ("from model import Mine", "Mine", "model:Mine"),
        ("from model import SpacyMLBackend as NewModel", "NewModel", "model:SpacyMLBackend"),
        ("from dino import DINOBackend", "DINOBackend", "dino:DINOBackend"),
        ("import model", "model.Mine", "model:Mine"),
        ("import pkg.models as m", "m.Mine", "pkg.models:Mine"),
    ],
)
def test_model_ref_reads_the_class_a_reference_wsgi_passes_to_init_app(tmp_path, imports, argument, ref):
    backend = reference_dir(tmp_path, imports, argument, model=None)
    assert model_ref(backend, env={}) == ref
    assert model_ref(backend, env={"LSML_MODEL": "x:Y"}) == "x:Y"


def test_model_ref_refuses_two_classes_given_to_init_app(tmp_path):
    (tmp_path / "_wsgi.py").write_text(
        "from a import One\nfrom b import Two\napp = init_app(model_class=One)\nother = init_app(Two)\n"
    )
    with pytest.raises(BackendDirError, match=r"several classes to init_app\(model_class=...\) \(a:One, b:Two\)"):
        model_ref(tmp_path, env={})


def test_model_ref_falls_back_to_the_one_subclass_in_model_py(tmp_path):
    # the class is defined in _wsgi.py itself, not imported: model.py decides
    backend = reference_dir(tmp_path, "class Local: pass", "Local")
    assert model_ref(backend, env={}) == "model:Mine"
    (tmp_path / "_wsgi.py").write_text("app = None\n")
    assert model_ref(backend, env={}) == "model:Mine"


def test_model_ref_names_what_it_looked_for_when_nothing_or_too_much_is_found(tmp_path):
    backend = reference_dir(tmp_path, "class Local: pass", "Local", model="x = 1\n")
    with pytest.raises(BackendDirError) as excinfo:
        model_ref(backend, env={})
    message = str(excinfo.value)
    for looked_for in (
        "LSML_MODEL",
        'MODEL = "module:Class"',
        "init_app(model_class=Local)",
        "LabelStudioMLBase in model.py",
    ):
        assert looked_for in message
    (tmp_path / "model.py").write_text(TWO)
    with pytest.raises(BackendDirError, match=r"several subclasses of LabelStudioMLBase \(Base, Concrete\)"):
        model_ref(backend, env={})


def test_start_on_a_dir_without_a_model_class_exits_non_zero_saying_why(tmp_path, capsys):
    from lsml.cli.main import main

    (tmp_path / "_wsgi.py").write_text("app = None\n")
    assert main(["start", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "cannot find the model class" in err and "init_app(model_class=...)" in err
