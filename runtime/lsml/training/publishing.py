"""What runs after a training published a version, in the process that trained it: subscribers, not imports.

Training knows nothing of what follows a publish. A feature that reacts to
new versions subscribes here (`on_publish`) at the composition root that
starts the process: `label-studio-ml worker` subscribes pre-labelling's
re-predict on publish (`lsml.prelabel_jobs.after_publish`,
`LSML_PRELABEL_ON_PUBLISH`). So the dependency points one way: pre-labelling
imports training, training never imports pre-labelling (hack/lint refuses an
import cycle). RQ's work horse is a fork of the worker, so it inherits the
subscriptions. The embedded runner's server re-predicts through its own
`on_finished` callback (`lsml.server.app`), not through here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from lsml.settings import Settings

logger = logging.getLogger("lsml.training")

#: A subscriber: `(settings, project, version name)`, called after the version is published.
PublishHook = Callable[[Settings, str, str], object]

_hooks: list[PublishHook] = []


def on_publish(hook: PublishHook) -> None:
    """Call `hook` after every version this process publishes (once, however often it subscribes)."""
    if hook not in _hooks:
        _hooks.append(hook)


def unsubscribe(hook: PublishHook) -> None:
    """Stop calling `hook` (tests; a process subscribes once for its lifetime)."""
    if hook in _hooks:
        _hooks.remove(hook)


def published(settings: Settings, project: str, version: str) -> None:
    """Tell every subscriber that `version` of `project` was published.

    The version is published whatever a subscriber does: one that raises is
    logged and the next one still runs (what follows a publish is best effort).
    """
    for hook in list(_hooks):
        try:
            hook(settings, project, version)
        except Exception:  # noqa: BLE001 - the version is published; what follows is best effort
            logger.warning(
                "project %s: %s after publishing %s failed",
                project,
                getattr(hook, "__qualname__", repr(hook)),
                version,
                exc_info=True,
            )
