"""The reconciler of MLBackends: ``Reconciler.reconcile(mlb, trigger)`` and the steps it runs.

One module per job: ``trigger`` (why a pass runs -> what it may do), ``children`` (apply and
prune the children), ``pods`` (why a component is unavailable), ``labelstudio_step``
(register/unwire in Label Studio), ``build_status`` (pure status), ``status_write`` (the only
status write), ``child_cache`` and ``backoff`` (what the steps remember), ``reconciler``
(locks, coalescing, the order of the steps).
"""

from .observed import ForeignObject
from .reconciler import Reconciler
from .trigger import Policy, Prune, Trigger, policy

__all__ = ["ForeignObject", "Policy", "Prune", "Reconciler", "Trigger", "policy"]
