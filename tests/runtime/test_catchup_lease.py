"""One catch-up check per project at a time across processes: the Redis lease and the file lease."""

from __future__ import annotations

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
    with other("3") as right_after:
        assert not right_after  # the lease outlives the check by half an interval
    wait_for(lambda: _takes(other, "3"), 5, what="the lease to expire after the check")


def test_the_file_lease_admits_one_holder_at_a_time(tmp_path):
    one, other = FileLease(tmp_path), FileLease(tmp_path)
    with one("3") as held:
        assert held
        with other("3") as second:
            assert not second
    with other("3") as after:
        assert after
