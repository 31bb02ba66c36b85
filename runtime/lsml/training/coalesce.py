"""Per-project coalescing of training triggers, made atomic in Redis.

Why: Label Studio sends a webhook for every annotation, so a labelling burst
would otherwise queue hundreds of identical trainings. The rule is: for one
project at most one training *pending* (queued or waiting for the running one)
and one *running*; a trigger that finds a pending job only replaces that job's
request (so it trains on the newest event); a trigger that arrives while a
training runs creates the next pending job, so no trigger is ever dropped.

All of it lives in one Redis hash per project (``lsml:train:<queue>:<project>``)
with the fields ``pending`` (job id), ``request`` (the pending job's newest
request, JSON, without its ``coalesced``) and ``running`` (job id), plus a list (``...:history``) of
every trigger folded into the pending job, oldest first and capped at
`HISTORY_LIMIT` (older ones are counted in the hash's ``dropped`` field and
reach `fit` as ``coalesced_dropped``), which the job hands to `fit` as ``coalesced`` (the
`TrainingRequest.merged_with` contract) at O(1) cost per webhook. A request that comes with triggers of its
own in ``coalesced`` (catch-up's: the newest missed event, the earlier ones folded in) puts them in the
history before itself, so a later webhook that replaces ``request`` cannot take them out of the training.
Two operations change them:

* ``submit`` (any server process): first a Lua script that folds the trigger
  into a live pending job (one round trip, the common case of a burst); when
  there is none, a WATCH/MULTI transaction over that hash,
  the pending job's RQ key and the running job's RQ key. It either rewrites
  ``request`` of the live pending job, or creates a new RQ job (deferred on the
  running one with RQ's ``depends_on``) and records it as ``pending`` in the
  same MULTI/EXEC, so a crash can never leave a pending id without its job.
* ``claim`` (the job itself, first thing in the worker): a Lua script that,
  if the job is still the pending one, takes the newest request, clears
  ``pending`` and sets ``running``. Because claim changes the hash, a submit
  racing with it fails its WATCH and retries: an event is either seen by the
  starting job or becomes the next pending job, never lost in between. The
  claimed request and its history stay (``claimed``, ``...:claimed-history``)
  until the job releases them at its end; a job RQ runs *again* because its
  worker was killed mid-fit (`lsml.training.rq_queue`, ``LSML_FIT_ATTEMPTS``)
  finds itself still ``running`` and claims the same request again.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from rq import Queue
from rq.job import Dependency, Job, JobStatus

from lsml.training.queue import MAX_COALESCED

log = logging.getLogger(__name__)

#: RQ statuses of a job that may still run: coalescing into it is safe.
LIVE_STATUSES = {JobStatus.QUEUED.value, JobStatus.DEFERRED.value, JobStatus.SCHEDULED.value, JobStatus.STARTED.value}

_CLAIM_LUA = """
local pending = redis.call('HGET', KEYS[1], 'pending')
local request = false
local history = {}
local dropped = 0
local rerun = 0
if pending == ARGV[1] then
  request = redis.call('HGET', KEYS[1], 'request')
  history = redis.call('LRANGE', KEYS[2], 0, -1)
  dropped = tonumber(redis.call('HGET', KEYS[1], 'dropped') or '0')
  redis.call('HDEL', KEYS[1], 'pending', 'request', 'dropped', 'claimed', 'claimed_dropped')
  redis.call('DEL', KEYS[3])
  if request then
    redis.call('HSET', KEYS[1], 'claimed', request, 'claimed_dropped', dropped)
  end
  if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('RENAME', KEYS[2], KEYS[3])
  end
elseif redis.call('HGET', KEYS[1], 'running') == ARGV[1] then
  request = redis.call('HGET', KEYS[1], 'claimed')
  history = redis.call('LRANGE', KEYS[3], 0, -1)
  dropped = tonumber(redis.call('HGET', KEYS[1], 'claimed_dropped') or '0')
  rerun = 1
end
redis.call('HSET', KEYS[1], 'running', ARGV[1])
return {request, history, dropped, rerun}
"""

# Append a request's triggers (ARGV[2]: a JSON list of them, each JSON, oldest first, its own last) to the pending
# job's history, keep the newest ARGV[3], count what falls off and what the request had dropped already (ARGV[5]).
_PUSH_LUA_BODY = """
for _, trigger in ipairs(cjson.decode(ARGV[2])) do
  redis.call('RPUSH', KEYS[2], trigger)
end
local length = redis.call('LLEN', KEYS[2])
local limit = tonumber(ARGV[3])
local dropped = tonumber(ARGV[5])
if length > limit then
  redis.call('LTRIM', KEYS[2], -limit, -1)
  dropped = dropped + length - limit
end
if dropped > 0 then
  redis.call('HINCRBY', KEYS[1], 'dropped', dropped)
end
"""
_PUSH_LUA = _PUSH_LUA_BODY + "return 1"

# The common case of a burst, in one atomic round trip with no retries: fold the
# trigger into a live pending job. (It reads the pending job's RQ hash, a key
# computed inside the script: fine on a single Redis, which is what RQ needs.)
_COALESCE_LUA = (
    """
local pending = redis.call('HGET', KEYS[1], 'pending')
if not pending then return false end
local function live(status)
  return status == 'queued' or status == 'deferred' or status == 'scheduled' or status == 'started'
end
local status = redis.call('HGET', ARGV[4] .. pending, 'status')
if not live(status) then
  return false
end
if status == 'deferred' then
  -- waiting for a job that ended without RQ enqueueing its dependents (see _deferred_on_live): not live
  local deps = redis.call('HGET', ARGV[4] .. pending, 'dependency_ids')
  local list = deps and cjson.decode(deps) or {}
  if #list > 0 then
    local waiting = false
    for _, dep in ipairs(list) do
      if live(redis.call('HGET', ARGV[4] .. dep, 'status')) then waiting = true end
    end
    if not waiting then return false end
  end
end
redis.call('HSET', KEYS[1], 'request', ARGV[1])
"""
    + _PUSH_LUA_BODY
    + """
return pending
"""
)

_RELEASE_LUA = """
if redis.call('HGET', KEYS[1], 'running') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'running', 'claimed', 'claimed_dropped')
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
"""

#: Bounded retries of the WATCH transaction: contention is a handful of
#: servers on one project, so a few rounds always suffice in practice.
MAX_ATTEMPTS = 50
#: Triggers remembered per pending job (the oldest are dropped beyond it and counted in ``dropped``).
HISTORY_LIMIT = MAX_COALESCED


@dataclass(frozen=True)
class Submitted:
    """What ``submit`` did: the job id to report, and whether it was new."""

    job_id: str
    created: bool


def state_key(queue_name: str, project: str) -> str:
    """The hash holding ``pending``/``request``/``running`` for one project."""
    return f"lsml:train:{queue_name}:{project}"


def history_key(queue_name: str, project: str) -> str:
    """The list of triggers folded into the pending job (each ``{"event", "data"}``)."""
    return f"lsml:train:{queue_name}:{project}:history"


def claimed_history_key(queue_name: str, project: str) -> str:
    """The history the running job claimed, kept until it ends so a re-run of it sees the same triggers."""
    return f"lsml:train:{queue_name}:{project}:claimed-history"


class Coalescer:
    """The two atomic operations on a project's training state (see module doc)."""

    def __init__(self, connection: redis.Redis, queue: Queue) -> None:
        self.connection = connection
        self.queue = queue
        self._claim = connection.register_script(_CLAIM_LUA)
        self._coalesce = connection.register_script(_COALESCE_LUA)
        self._release = connection.register_script(_RELEASE_LUA)
        self._push = connection.register_script(_PUSH_LUA)

    def submit(
        self,
        project: str,
        request: dict[str, Any],
        enqueue: Callable[[redis.client.Pipeline, str, Dependency | None], Job],
    ) -> Submitted:
        """Coalesce ``request`` into the project's pending job, or create one.

        ``enqueue(pipe, job_id, depends_on)`` must add the RQ job to ``pipe``
        (``Queue.enqueue_call(..., pipeline=pipe)``) without executing it.
        """
        key = state_key(self.queue.name, project)
        hkey = history_key(self.queue.name, project)
        own = {k: v for k, v in request.items() if k not in ("coalesced", "coalesced_dropped")}
        encoded = json.dumps(own, separators=(",", ":"))
        earlier = list(request.get("coalesced") or [])[-HISTORY_LIMIT:]
        dropped = int(request.get("coalesced_dropped") or 0) + len(request.get("coalesced") or []) - len(earlier)
        items = [*earlier, {"event": request.get("event"), "data": request.get("payload")}]
        triggers = json.dumps([json.dumps(t, separators=(",", ":")) for t in items], separators=(",", ":"))
        push_args: list[str | int] = [encoded, triggers, HISTORY_LIMIT, "", dropped]
        with self.connection.pipeline() as pipe:
            for _ in range(MAX_ATTEMPTS):
                pending = self._coalesce(
                    keys=[key, hkey], args=[encoded, triggers, HISTORY_LIMIT, Job.redis_job_namespace_prefix, dropped]
                )
                if pending:
                    return Submitted(_text(pending), created=False)
                # no live pending job: create one; WATCH makes concurrent creators retry (and then coalesce)
                try:
                    pipe.watch(key)
                    pending, running = (_text(v) for v in pipe.hmget(key, "pending", "running"))
                    if pending and self._live(pipe, pending):
                        pipe.multi()
                        pipe.hset(key, "request", encoded)
                        self._push(keys=[key, hkey], args=push_args, client=pipe)
                        pipe.execute()
                        return Submitted(pending, created=False)
                    depends_on = None
                    if running and self._live(pipe, running):
                        depends_on = Dependency(jobs=[running], allow_failure=True)
                    job_id = uuid.uuid4().hex
                    enqueue(pipe, job_id, depends_on)  # leaves pipe in MULTI
                    pipe.hset(key, mapping={"pending": job_id, "request": encoded})
                    # the history holds only triggers no job claimed (claim takes it whole): those of a pending
                    # job that will never run (cancelled, expired, deferred on a dead job) go to the new one
                    self._push(keys=[key, hkey], args=push_args, client=pipe)
                    pipe.execute()
                    return Submitted(job_id, created=True)
                except redis.WatchError:
                    pipe.reset()
                    continue
        raise redis.RedisError(f"could not queue a training for project {project!r}: too much contention")

    def _live(self, pipe: redis.client.Pipeline, job_id: str) -> bool:
        """WATCH a job's RQ key and tell whether it can still run."""
        job_key = Job.key_for(job_id)
        pipe.watch(job_key)
        status = _text(pipe.hget(job_key, "status"))
        if status == JobStatus.DEFERRED.value:
            return self._deferred_on_live(pipe, job_key)
        return status in LIVE_STATUSES

    def _deferred_on_live(self, pipe: redis.client.Pipeline, job_key: str) -> bool:
        """Whether a deferred job still waits for a job that may run (WATCHing those too).

        Why: RQ records a failed job (one pipeline) before it enqueues its dependents (another round trip); a
        worker killed or a Redis restart between the two leaves the dependent deferred for good, and nothing in
        RQ recovers it. Coalescing into it would answer 2xx for triggers no training ever sees.
        """
        raw = _text(pipe.hget(job_key, "dependency_ids"))
        if not raw:
            return True  # no record of what it waits for: as RQ left it
        dependencies = [Job.key_for(dep) for dep in json.loads(raw)]
        if dependencies:
            pipe.watch(*dependencies)
        return not dependencies or any(_text(pipe.hget(dep, "status")) in LIVE_STATUSES for dep in dependencies)

    def claim(self, project: str, job_id: str) -> dict[str, Any] | None:
        """Mark ``job_id`` running; return the request it trains on, None if it has none here.

        A pending job takes the newest request; its ``coalesced`` lists the
        earlier triggers folded into it (oldest first), as
        `TrainingRequest.merged_with` would. What it took stays in the hash
        (``claimed``) until `release`, so a re-run of the same job (RQ put it
        back after its worker was killed mid-fit) trains on exactly those
        triggers; newer ones stay with the next pending job.
        """
        name = self.queue.name
        keys = [state_key(name, project), history_key(name, project), claimed_history_key(name, project)]
        raw, history, dropped, rerun = self._claim(keys=keys, args=[job_id])
        if not raw:
            return None
        if rerun:
            log.warning("training job %s of project %s runs again (its previous attempt was killed)", job_id, project)
        request = json.loads(raw)
        # every trigger folded in is in the history, those a request brought in its own `coalesced` included;
        # the last one is the request itself
        request["coalesced"] = [json.loads(item) for item in history[:-1]]
        request.pop("coalesced_dropped", None)
        if dropped:
            request["coalesced_dropped"] = int(dropped)
        return request

    def release(self, project: str, job_id: str) -> None:
        """Forget ``job_id`` as the running job and what it claimed (no-op if another replaced it)."""
        name = self.queue.name
        self._release(keys=[state_key(name, project), claimed_history_key(name, project)], args=[job_id])

    def state(self, project: str) -> dict[str, str]:
        """The raw hash, for tests and diagnostics."""
        return {_text(k): _text(v) for k, v in self.connection.hgetall(state_key(self.queue.name, project)).items()}


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value
