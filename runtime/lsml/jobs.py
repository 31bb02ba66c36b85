"""What lsml's two job systems share: training (`lsml.training`) and pre-labelling (`lsml.prelabel_jobs`).

Both run either embedded (threads of the server process, without `REDIS_URL`) or on RQ (Redis and
`label-studio-ml worker`), chosen by one factory each (`lsml.training.make_queue`,
`lsml.prelabel_jobs.make_prelabel_jobs`); both answer `/job_status` with the same dict
(`lsml.training.queue.job_status`: job, status, project, error, model_version, ...), the server asking
pre-labelling first, then training; and on RQ both run a job whose work horse was killed again, up to
`attempts` runs in all (`LSML_FIT_ATTEMPTS`, `LSML_PRELABEL_ATTEMPTS`), while an embedded job dies with
its process and is not run again (`attempts` 1).

Submitting differs (a training request coalesces per project and returns its job id; a pre-labelling
request may join the project's active job and says whether it made a new one), so `submit` is in each
system's own protocol: `lsml.training.queue.TrainingQueue`, `lsml.prelabel_jobs.PrelabelJobs`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class JobSystem(Protocol):
    #: Runs a job gets when the process running it is killed: the RQ queues' setting, 1 embedded.
    attempts: int
    #: True when the jobs run in this process (no Redis): they end with it.
    embedded: bool

    def status(self, job_id: str) -> dict | None:
        """The `/job_status` dict of a job of this system, or None when it does not know the id."""
        ...
