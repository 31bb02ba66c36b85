"""`label-studio-ml init` and the CLI's argument handling, through the real entry point."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lsml.cli.main import COMMANDS

CLI = str(Path(sys.executable).parent / "label-studio-ml")
SCRIPT = "from lsml import LabelStudioMLBase\n\nclass Mine(LabelStudioMLBase):\n    pass\n"


def cli(*args, cwd=None):
    return subprocess.run([CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_init_scaffolds_a_backend_dir(tmp_path):
    (tmp_path / "my_model.py").write_text(SCRIPT)
    (tmp_path / "requirements.txt").write_text("numpy\n")
    r = cli("init", "backend", "--script", "my_model.py", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    backend = tmp_path / "backend"
    assert (backend / "model.py").read_text() == SCRIPT
    assert 'MODEL = "model:Mine"' in (backend / "_wsgi.py").read_text()
    assert "numpy" in (backend / "requirements.txt").read_text()
    for name in ("Dockerfile", "docker-compose.yml", "README.md"):
        assert (backend / name).is_file()


def test_init_refuses_an_existing_dir_without_force(tmp_path):
    (tmp_path / "m.py").write_text(SCRIPT)
    assert cli("init", "b", "--script", "m.py", cwd=tmp_path).returncode == 0
    r = cli("init", "b", "--script", "m.py", cwd=tmp_path)
    assert r.returncode != 0 and "--force" in r.stderr
    assert cli("init", "b", "--script", "m.py:Mine", "--force", cwd=tmp_path).returncode == 0


def test_init_lists_candidates_when_the_class_is_ambiguous(tmp_path):
    (tmp_path / "m.py").write_text(SCRIPT + "\nclass Second(Mine):\n    pass\n")
    r = cli("init", "b", "--script", "m.py", cwd=tmp_path)
    assert r.returncode == 2 and "Mine, Second" in r.stderr
    assert not (tmp_path / "b").exists()
    r = cli("init", "b", "--script", "m.py:Second", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert 'MODEL = "model:Second"' in (tmp_path / "b" / "_wsgi.py").read_text()


def test_init_compose_runs_server_rq_worker_and_redis(tmp_path):
    import yaml

    (tmp_path / "m.py").write_text(SCRIPT)
    assert cli("init", "b", "--script", "m.py", cwd=tmp_path).returncode == 0
    compose = yaml.safe_load((tmp_path / "b" / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"server", "worker", "redis"}
    assert services["worker"]["command"][:2] == ["label-studio-ml", "worker"]
    for name in ("server", "worker"):
        url = services[name]["environment"]["REDIS_URL"]
        assert url.startswith("redis://:${REDIS_PASSWORD:?") and url.endswith("}@redis:6379/0"), url
        assert "models:/data/models" in services[name]["volumes"]  # one model store for both


def test_init_gives_the_compose_redis_a_private_password_kept_out_of_images_and_argv(tmp_path):
    """Redis is code execution in the worker and holds /setup's tokens: the compose stack's has a password,
    from a 0600 `.env` that `.dockerignore` keeps out of the image, given on stdin (not in `ps`); compose
    refuses to start without it. The port is published on loopback only (auth is off by default)."""
    import stat

    import yaml

    (tmp_path / "m.py").write_text(SCRIPT)
    assert cli("init", "b", "--script", "m.py", cwd=tmp_path).returncode == 0
    backend = tmp_path / "b"
    env = backend / ".env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    (password,) = [line.split("=", 1)[1] for line in env.read_text().splitlines() if line.startswith("REDIS_PASSWORD=")]
    assert len(password) == 64
    assert ".env" in (backend / ".dockerignore").read_text().split()
    compose_text = (backend / "docker-compose.yml").read_text()
    assert password not in compose_text
    redis = yaml.safe_load(compose_text)["services"]["redis"]
    assert "requirepass $$REDIS_PASSWORD" in redis["command"][-1] and "--requirepass" not in redis["command"][-1]
    assert redis["environment"]["REDIS_PASSWORD"].startswith("${REDIS_PASSWORD:?")
    assert yaml.safe_load(compose_text)["services"]["server"]["ports"] == ["127.0.0.1:9090:9090"]
    # init again over it (--force): the stack keeps its password, and a user's own settings stay
    env.write_text(env.read_text() + "LABEL_STUDIO_URL=http://ls:8080\n")
    assert cli("init", "b", "--script", "m.py", "--force", cwd=tmp_path).returncode == 0
    assert f"REDIS_PASSWORD={password}" in env.read_text() and "LABEL_STUDIO_URL=http://ls:8080" in env.read_text()
    env.write_text("BASIC_AUTH_USER=me\n")  # a .env of the user's own, without a password: one is added
    assert cli("init", "b", "--script", "m.py", "--force", cwd=tmp_path).returncode == 0
    lines = env.read_text().splitlines()
    assert lines[0] == "BASIC_AUTH_USER=me" and lines[1].startswith("REDIS_PASSWORD=") and len(lines) == 2


@pytest.mark.parametrize(
    "args,needle",
    [
        (("init", "b", "--script", "missing.py"), "does not exist"),
        (("init", "b"), "--script"),
        (("init",), "NAME"),
        (("start", "not-a-backend"), "does not exist"),
        (("start", "."), "not a backend directory"),
        (("start", "x", "--port", "http"), "positive integer"),
        (("start", "x", "--workers", "0"), "positive integer"),
        (("frobnicate",), "invalid choice"),
        ((), "COMMAND"),
    ],
)
def test_wrong_arguments_give_a_clear_message_and_non_zero_exit(tmp_path, args, needle):
    r = cli(*args, cwd=tmp_path)
    assert r.returncode != 0 and needle in r.stderr, r.stderr


@pytest.mark.parametrize("command", [(), *[(c,) for c in COMMANDS]])
def test_help_everywhere(command):
    r = cli(*command, "--help")
    assert r.returncode == 0 and "usage: label-studio-ml" in r.stdout


def test_command_list_has_init_and_start():
    assert COMMANDS[:2] == ("init", "start")


def test_the_scaffolded_entry_point_serves_the_model(tmp_path):
    """`_wsgi:app` of an init'ed backend imports the copied model and answers /setup and /predict."""
    script = SCRIPT.replace(
        "    pass\n",
        "    def predict(self, tasks, context=None, **kwargs):\n"
        "        return [{'result': [], 'score': 0.5} for _ in tasks]\n",
    )
    (tmp_path / "mine.py").write_text(script)
    assert cli("init", "b", "--script", "mine.py", cwd=tmp_path).returncode == 0
    probe = (
        "import json, sys\n"
        "sys.path.insert(0, '.')\n"
        "from _wsgi import app\n"
        "c = app.test_client()\n"
        'config = \'<View><Text name="t" value="$t"/><Choices name="c" toName="t"><Choice value="A"/>'
        "</Choices></View>'\n"
        "assert c.post('/setup', json={'project': '1.1', 'schema': config}).status_code == 200\n"
        "r = c.post('/predict', json={'project': '1.1', 'tasks': [{'id': 1, 'data': {'t': 'x'}}]})\n"
        "print(json.dumps({'health': c.get('/health').json, 'predict': r.json}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("LSML_MODEL", "REDIS_URL", "MODEL_DIR")}
    r = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path / "b", capture_output=True, text=True, timeout=120, env=env
    )
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["health"]["model_class"] == "Mine"
    assert out["predict"]["results"] == [[]]  # untrained and empty: no prediction
