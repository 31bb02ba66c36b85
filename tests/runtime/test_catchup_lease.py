"""One catch-up check per project at a time across processes: the Redis lease and the file lease."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis

from lsml.catchup import FileLease, RedisLease
from tests.fixtures.polling import wait_for


def _takes(lease, project: str) -> bool:
    with lease(project) as held:
        return held


@pytest.mark.redis
def test_the_redis_lease_admits_one_holder_and_spaces_the_next_check(redis_url):
    one = RedisLease(redis.Redis.from_url(redis_url), "q", interval=1.0)
    other = RedisLease(redis.Redis.from_url(redis_url), "q", interval=1.0)
    with one("3") as held:
        assert held
        with other("3") as second:
            assert not second  # another process is checking this project
        with other("4") as elsewhere:
            assert elsewhere  # other projects are not held up
        leaving = time.monotonic()  # the release comes after this
    with other("3") as right_after:
        # the lease outlives the check by half an interval: refused, unless a starved machine held this thread up
        # for that long (then the lease lapsed as it should)
        assert not right_after or time.monotonic() - leaving >= 0.5
    wait_for(lambda: _takes(other, "3"), 5, what="the lease to expire after the check")


@pytest.mark.redis
def test_a_process_that_dies_mid_check_frees_the_lease_within_its_hold(redis_url):
    """A pod deleted (or OOM-killed) while its catch-up check runs never releases the lease. It used to be held for
    600 s, so no other process checked the project for 10 minutes: the real-pod catch-up test then timed out with
    every annotation made during the pod's death unrecovered. Killed here for real (SIGKILL), with the defaults."""
    runtime = Path(__file__).resolve().parents[2] / "runtime"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time, redis
                sys.path.insert(0, {str(runtime)!r})
                from lsml.catchup import RedisLease
                lease = RedisLease(redis.Redis.from_url({redis_url!r}), "q", interval=2.0)
                with lease("3") as held:
                    print("held" if held else "refused", flush=True)
                    time.sleep(600)  # a long check, ended by SIGKILL
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        other = RedisLease(redis.Redis.from_url(redis_url), "q", interval=2.0)
        assert not _takes(other, "3")  # the live holder keeps it
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    wait_for(lambda: _takes(other, "3"), 45, 0.5, what="the dead holder's lease to lapse (default hold 30 s)")


@pytest.mark.redis
def test_a_live_holder_renews_its_lease_while_its_check_runs(redis_url):
    connection = redis.Redis.from_url(redis_url)
    lease = RedisLease(connection, "q", interval=1.0)  # hold 30 s: it cannot lapse during this test
    lease.beat_seconds = 0.01  # renewals come fast instead of every 10 s
    renewed: list[bool] = []
    renew = lease.renew
    lease.renew = lambda key, token: renewed.append(renew(key, token)) or renewed[-1]  # type: ignore[method-assign]
    with lease("5") as held:
        assert held
        wait_for(lambda: len(renewed) >= 3, 10, what="the heartbeat to renew the lease")
        assert all(renewed), renewed
        assert connection.pttl("lsml:catchup:q:5") > 25_000  # pushed a whole hold ahead each time
    assert connection.pttl("lsml:catchup:q:5") <= 500  # released: half an interval to the next check (or gone)
    assert lease.renew("lsml:catchup:q:5", "not-ours") is False  # another's lease is never touched


def test_the_file_lease_admits_one_holder_at_a_time(tmp_path):
    one, other = FileLease(tmp_path), FileLease(tmp_path)
    with one("3") as held:
        assert held
        with other("3") as second:
            assert not second
    with other("3") as after:
        assert after
