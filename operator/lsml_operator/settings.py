"""Operator settings, read once from the environment (and overridden by command-line flags in main)."""

from __future__ import annotations

import os
from dataclasses import dataclass


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


@dataclass(frozen=True)
class OperatorSettings:
    """Knobs with defaults sized for a few hundred MLBackends per operator.

    resync_seconds: how often the timer re-applies every child and re-verifies the Label
        Studio registration even when nothing happened (a safety net; watches do the real work).
    timer_seconds: how often the timer wakes up to retry a failed registration (cheap when
        nothing is due, so it can be short).
    retry_base_seconds / retry_max_seconds: exponential backoff of Label Studio retries.
    """

    resync_seconds: float = 300.0
    timer_seconds: float = 10.0
    retry_base_seconds: float = 5.0
    retry_max_seconds: float = 300.0
    label_studio_timeout: float = 30.0
    delete_retries: int = 10
    max_workers: int = 16
    peering_name: str = "lsml-operator"

    @classmethod
    def from_env(cls) -> OperatorSettings:
        return cls(
            resync_seconds=_float("LSML_OPERATOR_RESYNC_SECONDS", cls.resync_seconds),
            timer_seconds=_float("LSML_OPERATOR_TIMER_SECONDS", cls.timer_seconds),
            retry_base_seconds=_float("LSML_OPERATOR_RETRY_BASE_SECONDS", cls.retry_base_seconds),
            retry_max_seconds=_float("LSML_OPERATOR_RETRY_MAX_SECONDS", cls.retry_max_seconds),
            label_studio_timeout=_float("LSML_OPERATOR_LABEL_STUDIO_TIMEOUT", cls.label_studio_timeout),
            delete_retries=int(_float("LSML_OPERATOR_DELETE_RETRIES", cls.delete_retries)),
            max_workers=int(_float("LSML_OPERATOR_MAX_WORKERS", cls.max_workers)),
            peering_name=os.environ.get("LSML_OPERATOR_PEERING_NAME", cls.peering_name),
        )
