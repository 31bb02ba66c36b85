"""Pin and roll back model versions over HTTP: `POST /versions/activate`, `POST /versions/unpin`.

Routes on the same blueprint as `routes.py`, so the same Basic auth covers
them (they are not in `auth.PUBLIC_ENDPOINTS`). They only move the store's
`current` / `pinned` pointers; every server process (this one and any other
sharing MODEL_DIR) serves the activated version once its reload watcher sees
the pointer move (`LSML_RELOAD_INTERVAL`).
"""

from __future__ import annotations

import logging

from flask import Response

from lsml.integrity import VersionIntegrityError
from lsml.server import bodies
from lsml.server.blueprint import bp, current_runtime, json_body, json_response
from lsml.server.errors import ApiError
from lsml.versions import version_report

logger = logging.getLogger("lsml.server")


@bp.route("/versions/activate", methods=["POST"], endpoint="versions_activate")
def activate() -> Response:
    rt = current_runtime()
    body = bodies.parse(bodies.ActivateBody, json_body())
    project, version, pin = body.project, body.version, body.pin
    store = rt.registry.store
    try:
        chosen = store.activate(project, version, pin=pin)
    except KeyError as exc:
        raise ApiError(404, "unknown_version", str(exc.args[0])) from None
    except VersionIntegrityError as exc:
        raise ApiError(409, "version_integrity", str(exc)) from None
    logger.info("project %s: %s activated%s over HTTP", project, chosen.name, " and pinned" if pin else "")
    rt.registry.reload(project)
    return json_response(version_report(store, project, rt.settings))


@bp.route("/versions/unpin", methods=["POST"], endpoint="versions_unpin")
def unpin() -> Response:
    rt = current_runtime()
    project = bodies.parse(bodies.UnpinBody, json_body()).project
    store = rt.registry.store
    newest = store.unpin(project)
    logger.info("project %s: unpinned over HTTP; current is %s", project, newest.name if newest else "none")
    rt.registry.reload(project)
    return json_response(version_report(store, project, rt.settings))
