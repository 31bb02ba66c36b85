"""The processes below a pid, which of them still run, the sockets they hold: read from /proc (Linux); and
freezing a process with its children (SIGSTOP) while a test arranges what they find when they go on.

Why: the serving tests check what a real `label-studio-ml start` left behind after a
stop, and how its workers share their connections; the fault tests decide a race between
a worker's timers and the test's own step by holding the worker still (`frozen`).
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.fixtures.polling import wait_for


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(ppid, state, start time) of a live process, None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0], int(fields[19])


def descendants(root: int) -> dict[int, int]:
    """pid -> start time of every process below `root`."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))):
            children.setdefault(stat[0], []).append(int(entry))
    found, todo = {}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            stat = _stat(child)
            if stat:
                found[child] = stat[2]
                todo.append(child)
    return found


def still_running(processes: dict[int, int]) -> list[str]:
    """The processes of `processes` that still run (the same pid and start time, not a zombie)."""
    alive = []
    for pid, started in processes.items():
        stat = _stat(pid)
        if stat and stat[2] == started and stat[1] != "Z":
            comm = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            alive.append(f"{pid} (ppid {stat[0]}): {comm[:120]}")
    return alive


def port_is_free(port: int) -> bool:
    """Whether a new server could listen on the port (SO_REUSEADDR as gunicorn, no SO_REUSEPORT: any listener blocks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen(1)
        except OSError:
            return False
    return True


def established_per_process(root: int, port: int) -> list[int]:
    """Established connections to local `port` held by each process below `root` (those holding any), largest first."""
    established = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                established.add(fields[9])
    counts = []
    for pid in descendants(root):
        try:
            inodes = {
                os.readlink(fd)[8:-1]
                for fd in Path(f"/proc/{pid}/fd").iterdir()
                if os.readlink(fd).startswith("socket:[")
            }
        except OSError:
            continue
        if inodes & established:
            counts.append(len(inodes & established))
    return sorted(counts, reverse=True)


@contextmanager
def frozen(root: int) -> Iterator[list[int]]:
    """Stop `root` and every process below it (SIGSTOP, as a paused VM or a stalled node would), yield their
    pids once each one is seen stopped, and let them go on (SIGCONT) on leaving, whatever happened.

    `root` first, so it starts nothing new meanwhile; each pid separately, since RQ's work horse runs in a
    process group of its own. A stopped worker writes no heartbeat and its horse no page: what the test
    does meanwhile cannot race them.
    """
    pids = [root]
    try:
        os.kill(root, signal.SIGSTOP)
        pids += list(descendants(root))
        for pid in pids[1:]:
            os.kill(pid, signal.SIGSTOP)
        wait_for(
            lambda: all((stat := _stat(pid)) is None or stat[1] in ("T", "t") for pid in pids),
            10,
            what=f"processes {pids} to stop",
        )
        yield pids
    finally:
        for pid in reversed(pids):
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
