"""What a backend directory is, how to find its model, and how `init` makes one.

A backend directory holds::

    _wsgi.py            MODEL = "model:MyModel"; app = create_app(MODEL)   (gunicorn loads _wsgi:app)
    model.py            the user's model (a LabelStudioMLBase subclass)
    requirements.txt    what the model needs besides lsml
    Dockerfile, docker-compose.yml, README.md
    data/models/        MODEL_DIR by default (versions + state), logs/ (server.log, ...)

The model reference (`"module:Class"`, what the RQ worker and `start` import)
is the first of, all read with `ast` (no file of the directory is executed):

1. `LSML_MODEL`;
2. the `MODEL` string constant of `_wsgi.py` (what `label-studio-ml init` writes);
3. the class `_wsgi.py` passes to `init_app(model_class=...)`, resolved through
   its imports (`from model import X` -> `model:X`): the reference SDK's
   `_wsgi.py`, unmodified;
4. the one `LabelStudioMLBase` subclass of `model.py`.
"""

from __future__ import annotations

import ast
import os
import re
import secrets
import shutil
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from lsml import setting_names
from lsml.errors import LsmlError

WSGI_FILE = "_wsgi.py"
MODEL_FILE = "model.py"
BASE_CLASS = "LabelStudioMLBase"
INIT_APP = "init_app"
TEMPLATE_FILES = {  # template name -> file written
    "_wsgi.py.tmpl": "_wsgi.py",
    "requirements.txt.tmpl": "requirements.txt",
    "Dockerfile.tmpl": "Dockerfile",
    "docker-compose.yml.tmpl": "docker-compose.yml",
    "README.md.tmpl": "README.md",
    "dockerignore.tmpl": ".dockerignore",
}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class BackendDirError(LsmlError, ValueError):
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


def _imported_names(tree: ast.Module) -> dict[str, tuple[str, str | None]]:
    """Local name -> (module, attribute or None) for the absolute imports of a module."""
    names: dict[str, tuple[str, str | None]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = (node.module, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = (alias.name, None)
                else:  # `import a.b` binds `a`
                    top = alias.name.split(".")[0]
                    names[top] = (top, None)
    return names


def _resolve_class(expr: ast.expr, imported: Mapping[str, tuple[str, str | None]]) -> str | None:
    """`module:Class` of a class expression of `_wsgi.py` (`X` from `from m import X`, or `m.X`), else None."""
    if isinstance(expr, ast.Name) and expr.id in imported:
        module, attribute = imported[expr.id]
        return f"{module}:{attribute}" if attribute and attribute != "*" else None
    if isinstance(expr, ast.Attribute):
        parts = [expr.attr]
        value = expr.value
        while isinstance(value, ast.Attribute):
            parts.insert(0, value.attr)
            value = value.value
        if isinstance(value, ast.Name) and value.id in imported:
            module, attribute = imported[value.id]
            path = ([attribute] if attribute else []) + parts
            return f"{'.'.join([module, *path[:-1]])}:{path[-1]}"
    return None


def read_init_app_classes(wsgi_file: str | Path) -> tuple[list[str], list[str]]:
    """The classes a reference-SDK `_wsgi.py` passes to `init_app(model_class=...)`.

    Returns (distinct `module:Class` refs in file order, source text of the
    arguments that could not be traced to an import). The reference
    `_wsgi.py` calls `init_app` twice (`__main__` and gunicorn) with the same
    class, hence "distinct". Read with `ast`: importing `_wsgi.py` would
    configure logging and build an app in whatever process asked.
    """
    try:
        tree = ast.parse(Path(wsgi_file).read_text(encoding="utf-8"), filename=str(wsgi_file))
    except (OSError, SyntaxError, ValueError):
        return [], []
    imported = _imported_names(tree)
    refs: list[str] = []
    unresolved: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if name != INIT_APP:
            continue
        argument = next((k.value for k in node.keywords if k.arg == "model_class"), None)
        if argument is None and node.args:
            argument = node.args[0]
        if argument is None:
            continue
        ref = _resolve_class(argument, imported)
        found, text = (unresolved, ast.unparse(argument)) if ref is None else (refs, ref)
        if text not in found:
            found.append(text)
    return refs, unresolved


def model_ref(backend_dir: str | Path, env: Mapping[str, str] | None = None) -> str:
    """The backend's `module:Class` (the module docstring lists where it is looked for, in order).

    Raises BackendDirError naming every place looked at when none gives one class.
    """
    env = os.environ if env is None else env
    if env.get(setting_names.LSML_MODEL):
        return env[setting_names.LSML_MODEL]
    backend = Path(backend_dir)
    wsgi = backend / WSGI_FILE
    if not wsgi.is_file():
        raise BackendDirError(
            f"{backend} is not a backend directory (no {WSGI_FILE}); create one with "
            "`label-studio-ml init NAME --script model.py` or set LSML_MODEL=module:Class"
        )
    ref = read_model_constant(wsgi)
    if ref:
        return ref
    refs, unresolved = read_init_app_classes(wsgi)
    if len(refs) > 1:
        raise BackendDirError(
            f"{wsgi} passes several classes to {INIT_APP}(model_class=...) ({', '.join(refs)}): "
            "choose one with LSML_MODEL=module:Class"
        )
    if refs:
        return refs[0]
    return _only_model_class(backend, wsgi, unresolved)


def _only_model_class(backend: Path, wsgi: Path, unresolved: list[str]) -> str:
    """`model:Class` for the one LabelStudioMLBase subclass of model.py; the error lists what was looked for."""
    script = backend / MODEL_FILE
    candidates = find_model_classes(script) if script.is_file() else []
    if len(candidates) == 1:
        return f"model:{candidates[0]}"
    if len(candidates) > 1:
        raise BackendDirError(
            f"cannot tell the model class of {backend}: {script} defines several subclasses of {BASE_CLASS} "
            f"({', '.join(candidates)}) and {wsgi} names none; set LSML_MODEL=model:Class"
        )
    untraced = f" ({INIT_APP}(model_class={', '.join(unresolved)}) is not imported from a module)" if unresolved else ""
    raise BackendDirError(
        f'cannot find the model class of {backend}: looked for LSML_MODEL, a MODEL = "module:Class" '
        f"constant in {WSGI_FILE}, {INIT_APP}(model_class=...) in {WSGI_FILE}{untraced}, and a subclass "
        f"of {BASE_CLASS} in {MODEL_FILE}; add MODEL to {WSGI_FILE} or set LSML_MODEL=module:Class"
    )


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
    written.append(_compose_env(target / ENV_FILE))
    return written


ENV_FILE = ".env"


def _compose_env(path: Path) -> Path:
    """docker compose's `.env` beside the compose file: the stack's Redis password, made here, 0600.

    Why: the compose Redis requires a password (it is code execution in the worker and holds `/setup`'s
    tokens), and compose refuses to start without `REDIS_PASSWORD` rather than run one open. A `.env` the user
    already has is kept, a password only added when it has none; `.dockerignore` keeps the file out of images.
    """
    existing = path.read_text(encoding="utf-8") if path.is_file() else ""
    if any(line.split("=", 1)[0].strip() == "REDIS_PASSWORD" for line in existing.splitlines()):
        return path
    lines = (
        []
        if existing
        else [
            "# docker compose reads this file (never copied into the image: .dockerignore). Keep it private.",
            "# LABEL_STUDIO_URL=http://label-studio:8080",
            "# LABEL_STUDIO_API_KEY=",
            "# BASIC_AUTH_USER=",
            "# BASIC_AUTH_PASS=",
        ]
    )
    lines.append(f"REDIS_PASSWORD={secrets.token_hex(32)}")
    prefix = existing if not existing or existing.endswith("\n") else existing + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(prefix + "\n".join(lines) + "\n")
    path.chmod(0o600)
    return path
