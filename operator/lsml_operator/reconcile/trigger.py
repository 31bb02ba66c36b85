"""Why a reconcile runs (``Trigger``) and what that allows it to do (``Policy``).

Every kopf handler names its trigger; the table below is the one place that says how much a
pass of each kind trusts the caches. No pass re-applies a child the watches show holding its
desired state (``fingerprint``); full passes re-read what no watch follows (the Redis password
Secret, the Label Studio registration, a ServiceMonitor). A spec change asks the API server for
children to prune; a restart prunes what the watches listed (a child they have not listed yet is
pruned by the next resync) and reads a child not listed yet before writing it, so a restart with
nothing changed writes nothing. A new MLBackend's children are expected absent: each first write is a
create-only apply, with no look first (one request per child instead of two). What the watches cannot
show (a child deleted while a watch re-listed) the resync's audit finds (``audit.py``).

| trigger     | full | prune   | wait_if_busy | expect_absent |
|-------------|------|---------|--------------|---------------|
| CREATE      | yes  | NONE    | yes          | yes           |
| UPDATE      | yes  | ASK_API | yes          | no            |
| RESUME      | yes  | SEEN    | yes          | no            |
| RESYNC      | yes  | SEEN    | no           | no            |
| RETRY       | no   | NONE    | no           | no            |
| DIAGNOSE    | no   | NONE    | no           | no            |
| CHILD_EVENT | no   | NONE    | no           | no            |
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Trigger(enum.Enum):
    """What started a reconcile."""

    CREATE = "create"  # kopf on.create: a new MLBackend
    UPDATE = "update"  # kopf on.update: its spec (or metadata kopf diffs) changed
    RESUME = "resume"  # kopf on.resume: the operator (re)started and found it
    RESYNC = "resync"  # the timer: resync_seconds passed since the last full pass
    RETRY = "retry"  # the timer: a Label Studio (or ServiceMonitor) backoff is over
    DIAGNOSE = "diagnose"  # the timer: a component is unavailable, its pods' cause may have changed
    CHILD_EVENT = "child-event"  # a watched child was added, changed or deleted (also the re-run after a busy pass)


class Prune(enum.Enum):
    """How children the spec no longer wants are found and deleted."""

    NONE = "none"  # not looked for
    SEEN = "seen"  # only those the watches have shown this process (costs no request when none are stale)
    ASK_API = "ask-api"  # a GET for each optional child (a spec update may race the watch of a child)


@dataclass(frozen=True)
class Policy:
    """What one pass may do.

    full: re-read what no watch follows: the Redis password Secret, the Label Studio registration, a
        ServiceMonitor; and write a status whose messages alone changed ("1/3 updated" -> "2/3 updated";
        between full passes only status and reason changes are worth a write). Children are applied
        only where they differ from the spec, on every pass (the watches keep that knowledge current).
    prune: whether and how to delete optional children the spec dropped.
    wait_if_busy: when another pass of the same MLBackend runs, wait for it (spec changes must not be
        lost) or mark the object dirty and return at once (the running pass runs once more with the
        latest body, so a burst of child events costs one extra pass, not one blocked thread each).
    expect_absent: the MLBackend was never handled, so no child of it exists yet: a child's first write is an
        apply that creates it only if its name is free (a taken name answers 409 and is then looked at), and
        the Redis password Secret is created with no look first. Not on a restart's passes: there every child
        exists, and a refused write would be a write where nothing changed.
    """

    full: bool
    prune: Prune
    wait_if_busy: bool
    expect_absent: bool = False


POLICIES: dict[Trigger, Policy] = {
    Trigger.CREATE: Policy(full=True, prune=Prune.NONE, wait_if_busy=True, expect_absent=True),
    Trigger.UPDATE: Policy(full=True, prune=Prune.ASK_API, wait_if_busy=True),
    Trigger.RESUME: Policy(full=True, prune=Prune.SEEN, wait_if_busy=True),
    Trigger.RESYNC: Policy(full=True, prune=Prune.SEEN, wait_if_busy=False),
    Trigger.RETRY: Policy(full=False, prune=Prune.NONE, wait_if_busy=False),
    Trigger.DIAGNOSE: Policy(full=False, prune=Prune.NONE, wait_if_busy=False),
    Trigger.CHILD_EVENT: Policy(full=False, prune=Prune.NONE, wait_if_busy=False),
}

# the extra pass a busy reconcile runs for the triggers that came in meanwhile (all of them coalesced ones)
RERUN = Trigger.CHILD_EVENT


def policy(trigger: Trigger) -> Policy:
    """The policy of a trigger (every trigger has one: ``POLICIES`` is total, checked by its unit test)."""
    return POLICIES[trigger]
