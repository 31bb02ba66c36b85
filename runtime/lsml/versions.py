"""Which version a project serves, and one report of its versions for `label-studio-ml versions` and `/versions`.

Two pins exist: `activate` (the store's `pinned` pointer, moved at run time)
and `LSML_PINNED_VERSIONS` (configuration, e.g. the MLBackend's
`spec.model.pinnedVersions`). The configured one wins while it names a kept
version; `served_version` is the one rule the loader, the pre-labelling job
and the report share.
"""

from __future__ import annotations

import logging

from lsml import setting_names
from lsml.settings import Settings
from lsml.store import ModelStore, ModelVersion

logger = logging.getLogger(__name__)
_warned: set[tuple[str, str]] = set()


def configured_pin(store: ModelStore, settings: Settings | None, project: str) -> ModelVersion | None:
    """The kept version LSML_PINNED_VERSIONS pins for `project`; None when unset or not kept (warned once)."""
    name = settings.pinned_version(project) if settings is not None else None
    if name is None:
        return None
    try:
        return store.find(project, name)
    except KeyError:
        if not store.versions(project):  # nothing published yet (or a project no one set up): nothing to warn of,
            return None  # and nothing remembered for a project id any request may name
        if (project, name) not in _warned:
            _warned.add((project, name))
            logger.warning(
                "project %s: LSML_PINNED_VERSIONS pins %s, which is not kept; serving the store's current version",
                project,
                name,
            )
        return None


def served_version(store: ModelStore, settings: Settings | None, project: str) -> ModelVersion | None:
    """What the project serves: the configured pin, else the store's `current` (which `activate` moves)."""
    return configured_pin(store, settings, project) or store.current(project)


def version_at(store: ModelStore, settings: Settings | None, project: str, when: float) -> str | None:
    """The version the project served at Unix time `when`, as far as the store can tell: the configured pin
    (LSML_PINNED_VERSIONS), else the newest version published as current (not a candidate the gate held) at
    or before `when`. `activate` moves are not recorded, so a version served by hand is not replayed."""
    configured = configured_pin(store, settings, project)
    if configured is not None:
        return configured.name
    served = [v for v in store.versions(project) if v.created_at <= when and not (v.metadata or {}).get("candidate")]
    return served[-1].name if served else None


def version_report(store: ModelStore, project: str, settings: Settings | None = None) -> dict:
    """`{"project", "versions": [names], "details": [...], "current", "pinned", "pinned_by", "latest"}`.

    `details` carries each version's metadata plus `current` / `pinned` flags;
    `current` is what every server process serves (within LSML_RELOAD_INTERVAL),
    `pinned` the pinned version (None: each publish becomes current) and
    `pinned_by` `"LSML_PINNED_VERSIONS"` or `"activate"`. Each detail has `scores` (held-out figures
    stored with the version), `candidate` (the quality gate kept it from being served), `gate` (why) and
    `gate_check` (what it compared: metric, tolerance, score, served, served_score);
    `metrics` names every score any kept version has.
    """
    found = store.versions(project)
    configured = configured_pin(store, settings, project)
    current = configured or store.current(project)
    pinned = configured or store.pinned(project)
    details = []
    for v in found:
        item = v.to_dict()
        item["current"] = current is not None and v.number == current.number
        item["pinned"] = pinned is not None and v.number == pinned.number
        meta = v.metadata or {}
        item["scores"] = meta.get("scores") or {}
        # a candidate: published, refused by the quality gate (`gate` says why), served only once activated
        item["candidate"] = bool(meta.get("candidate")) and not item["current"]
        if meta.get("gate"):
            item["gate"] = meta["gate"]
        if meta.get("gate_check"):
            item["gate_check"] = meta["gate_check"]  # metric, tolerance, score, served, served_score
        details.append(item)
    return {
        "project": project,
        "versions": [v.name for v in found],
        "details": details,
        "current": current.name if current else None,
        "pinned": pinned.name if pinned else None,
        "pinned_by": (setting_names.LSML_PINNED_VERSIONS if configured else "activate") if pinned else None,
        "latest": found[-1].name if found else None,
        # every metric any kept version was scored on (held-out tasks, LSML_HOLDOUT_FRACTION): a column each
        "metrics": sorted({k for item in details for k in item["scores"]}),
    }
