"""What a backend directory is, how to find its model, and how `init` makes one.

A backend directory holds::

    _wsgi.py            MODEL = "model:MyModel"; app = create_app(MODEL)   (gunicorn loads _wsgi:app)
    model.py            the user's model (a LabelStudioMLBase subclass)
    requirements.txt    what the model needs besides lsml
    Dockerfile, docker-compose.yml, README.md
    data/models/        MODEL_DIR by default (versions + state), logs/ (server.log, ...)

The model reference is `LSML_MODEL` when set, else the `MODEL` string
constant of `_wsgi.py`, read with `ast` (the file is not executed).
"""

from __future__ import annotations

import ast
import os
import re
import shutil
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

WSGI_FILE = "_wsgi.py"
MODEL_FILE = "model.py"
BASE_CLASS = "LabelStudioMLBase"
TEMPLATE_FILES = {  # template name -> file written
    "_wsgi.py.tmpl": "_wsgi.py",
    "requirements.txt.tmpl": "requirements.txt",
    "Dockerfile.tmpl": "Dockerfile",
    "docker-compose.yml.tmpl": "docker-compose.yml",
    "README.md.tmpl": "README.md",
    "dockerignore.tmpl": ".dockerignore",
}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class BackendDirError(ValueError):
    """Not a backend directory, no model found, or init refused; the message says what to do."""


def is_backend_dir(path: str | Path) -> bool:
    return (Path(path) / WSGI_FILE).is_file()


def read_model_constant(wsgi_file: str | Path) -> str | None:
    """The string assigned to a top-level `MODEL` in a `_wsgi.py`, or None."""
    try:
        tree = ast.parse(Path(wsgi_file).read_text(encoding="utf-8"), filename=str(wsgi_file))
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        targets: list[ast.expr] = []
        value = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        for target in targets:
            if isinstance(target, ast.Name) and target.id == "MODEL":
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    return value.value
    return None


def model_ref(backend_dir: str | Path, env: Mapping[str, str] | None = None) -> str:
    """`LSML_MODEL`, else `_wsgi.py`'s `MODEL`; raises BackendDirError when neither is there."""
    env = os.environ if env is None else env
    if env.get("LSML_MODEL"):
        return env["LSML_MODEL"]
    backend = Path(backend_dir)
    wsgi = backend / WSGI_FILE
    if not wsgi.is_file():
        raise BackendDirError(
            f"{backend} is not a backend directory (no {WSGI_FILE}); create one with "
            "`label-studio-ml init NAME --script model.py` or set LSML_MODEL=module:Class"
        )
    ref = read_model_constant(wsgi)
    if not ref:
        raise BackendDirError(f'{wsgi} has no MODEL = "module:Class" constant; add one or set LSML_MODEL')
    return ref


def find_model_classes(script: str | Path) -> list[str]:
    """Classes of `script` that subclass LabelStudioMLBase (directly or through another class of the script).

    Reads the source with `ast`; nothing is imported or executed.
    """
    path = Path(script)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as exc:
        raise BackendDirError(f"{path} is not valid Python: {exc}") from None
    bases: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names = set()
            for base in node.bases:
                if isinstance(base, ast.Name):
                    names.add(base.id)
                elif isinstance(base, ast.Attribute):
                    names.add(base.attr)
            bases[node.name] = names
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, parents in bases.items():
            if name not in found and (BASE_CLASS in parents or parents & found):
                found.add(name)
                changed = True
    return [name for name in bases if name in found]


def split_script_spec(spec: str) -> tuple[Path, str | None]:
    """`path/to/model.py[:Class]` -> (path, Class or None)."""
    head, sep, tail = spec.rpartition(":")
    if sep and _IDENT.match(tail) and head:
        return Path(head), tail
    return Path(spec), None


def choose_model_class(script: Path, class_name: str | None) -> str:
    candidates = find_model_classes(script)
    if class_name:
        if class_name not in candidates:
            known = ", ".join(candidates) or "none"
            raise BackendDirError(f"{script} has no subclass of {BASE_CLASS} named {class_name!r} (found: {known})")
        return class_name
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise BackendDirError(
            f"{script} defines no subclass of {BASE_CLASS}; write one (see docs/writing-a-backend.md) or pass --script PATH:Class"
        )
    raise BackendDirError(
        f"{script} defines several subclasses of {BASE_CLASS} ({', '.join(candidates)}): "
        f"choose one with --script {script}:Class"
    )


def _template(name: str) -> str:
    return resources.files("lsml").joinpath("templates").joinpath(name).read_text(encoding="utf-8")


def _render(text: str, values: Mapping[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def scaffold(target: str | Path, script: str | Path, class_name: str | None = None, force: bool = False) -> list[Path]:
    """Create backend directory `target` around `script` (copied to model.py). Returns the files written.

    Refuses to touch an existing non-empty directory unless `force`.
    """
    target = Path(target)
    script = Path(script)
    if not script.is_file():
        raise BackendDirError(f"script {script} does not exist")
    cls = choose_model_class(script, class_name)
    if target.exists() and not target.is_dir():
        raise BackendDirError(f"{target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise BackendDirError(f"{target} already exists and is not empty; pass --force to overwrite its files")
    target.mkdir(parents=True, exist_ok=True)
    values = {"MODEL": f"model:{cls}", "CLASS": cls, "NAME": target.resolve().name}
    written = []
    model_file = target / MODEL_FILE
    if script.resolve() != model_file.resolve():
        shutil.copyfile(script, model_file)
    written.append(model_file)
    extra_requirements = ""
    script_requirements = script.parent / "requirements.txt"
    if script_requirements.is_file():
        lines = script_requirements.read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
        extra_requirements = "\n".join(kept) + ("\n" if kept else "")
    values["REQUIREMENTS"] = extra_requirements
    for template, filename in TEMPLATE_FILES.items():
        path = target / filename
        path.write_text(_render(_template(template), values), encoding="utf-8")
        written.append(path)
    return written
