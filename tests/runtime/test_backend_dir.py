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
