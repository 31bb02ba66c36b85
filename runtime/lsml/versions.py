"""What a project's versions look like to people: one report for `label-studio-ml versions` and `/versions`.

Pinning itself is the store's (`ModelStore.activate` / `unpin`); this module
only describes it, so the CLI and the HTTP API say the same thing.
"""

from __future__ import annotations

from lsml.store import ModelStore


def version_report(store: ModelStore, project: str) -> dict:
    """`{"project", "versions": [names], "details": [...], "current", "pinned", "latest"}`.

    `details` carries each version's metadata plus `current` / `pinned` flags;
    `current` is what every server process serves (within LSML_RELOAD_INTERVAL),
    `pinned` the version `activate` pinned (None: each publish becomes current).
    """
    found = store.versions(project)
    current, pinned = store.current(project), store.pinned(project)
    details = []
    for v in found:
        item = v.to_dict()
        item["current"] = current is not None and v.number == current.number
        item["pinned"] = pinned is not None and v.number == pinned.number
        details.append(item)
    return {
        "project": project,
        "versions": [v.name for v in found],
        "details": details,
        "current": current.name if current else None,
        "pinned": pinned.name if pinned else None,
        "latest": found[-1].name if found else None,
    }
