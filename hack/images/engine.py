"""A Docker engine for the image builds: the machine's own when it answers, else a private dockerd.

Why a private one: CI machines of this kind have Debian's docker.io installed but no daemon
running, and the engineers' machines must not get a system-wide daemon reconfigured under them.
The private dockerd keeps everything of its own (data root and logs under ~/.cache/lsml/docker,
exec root, socket and pidfile under /run) and touches no firewall rule (--iptables=false) and no
default bridge (--bridge=none): the builds run their RUN steps with --network none, and what needs
a network (the compose tests) creates a user-defined bridge network and removes it afterwards.
Needs root, as dockerd does.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

CACHE = Path(os.environ.get("LSML_DOCKER_DIR", Path.home() / ".cache" / "lsml" / "docker"))
SOCKET = Path(os.environ.get("LSML_DOCKER_SOCKET", "/run/lsml-docker.sock"))
PIDFILE = SOCKET.with_suffix(".pid")
EXEC_ROOT = SOCKET.with_suffix("")  # /run/lsml-docker
LOG = CACHE / "log" / "dockerd.log"


def docker_cli() -> str:
    """Debian's client (matches its dockerd 20.10); any other `docker` on PATH only as a fallback."""
    for candidate in ("/usr/bin/docker", shutil.which("docker")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise SystemExit("docker CLI not found: run hack/install-system-deps.sh (Debian's docker.io)")


def answers(host: str | None) -> bool:
    env = dict(os.environ)
    env.pop("DOCKER_HOST", None)
    if host:
        env["DOCKER_HOST"] = host
    try:
        return (
            subprocess.run(
                [docker_cli(), "info"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30
            ).returncode
            == 0
        )
    except subprocess.TimeoutExpired:
        return False


def private_host() -> str:
    return f"unix://{SOCKET}"


def ensure() -> str:
    """The DOCKER_HOST to use: $DOCKER_HOST or the default engine if it answers, else the private one."""
    for host in (os.environ.get("DOCKER_HOST") or None, None):
        if answers(host):
            return host or "unix:///var/run/docker.sock"
    if answers(private_host()):
        return private_host()
    if os.geteuid() != 0:
        raise SystemExit(
            f"no Docker engine answers (DOCKER_HOST={os.environ.get('DOCKER_HOST', 'unset')}) "
            "and starting a private dockerd needs root: run as root or point DOCKER_HOST at an engine"
        )
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    if not os.access(dockerd, os.X_OK):
        raise SystemExit("dockerd not found: run hack/install-system-deps.sh (Debian's docker.io)")
    LOG.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        dockerd,
        "--data-root",
        str(CACHE / "data"),
        "--exec-root",
        str(EXEC_ROOT),
        "--pidfile",
        str(PIDFILE),
        "--host",
        private_host(),
        "--iptables=false",
        "--ip-masq=false",
        "--bridge=none",
    ]
    with open(LOG, "ab") as log:
        subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=CACHE
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if answers(private_host()):
            return private_host()
        time.sleep(0.5)
    raise SystemExit(
        f"private dockerd did not answer on {SOCKET} within 60 s; see {LOG}:\n"
        + "".join(LOG.read_text(errors="replace").splitlines(keepends=True)[-15:])
    )


def stop(timeout: float = 60) -> bool:
    """Stops the private dockerd (its containerd child exits with it); False when none ran."""
    try:
        pid = int(PIDFILE.read_text().strip())
    except (FileNotFoundError, ValueError):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        PIDFILE.unlink(missing_ok=True)
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    raise SystemExit(f"dockerd (pid {pid}) still running {timeout:.0f} s after SIGTERM; see {LOG}")


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["stop"]:
        print("stopped the private dockerd" if stop() else "no private dockerd was running", file=sys.stderr)
    elif sys.argv[1:] == ["ensure"]:
        print(ensure())
    else:
        raise SystemExit("usage: engine.py ensure|stop")
