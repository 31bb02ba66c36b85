"""LabelStudioClient: the one object the runtime, the CLI, the operator and the tests use.

Each concern lives in its own module (projects, tasks, ML backends and their
webhooks, media); this class only puts them together.
"""

from __future__ import annotations

from lsml.labelstudio.media import MediaMixin
from lsml.labelstudio.ml_backends import MLBackendsMixin
from lsml.labelstudio.projects import ProjectsMixin
from lsml.labelstudio.tasks import TasksMixin


class LabelStudioClient(ProjectsMixin, TasksMixin, MLBackendsMixin, MediaMixin):
    """`LabelStudioClient(url, token=None, timeout=10)`.

    `token` may be a legacy token or a personal access token; the kind is
    detected from its shape. Every failure is a LabelStudioError carrying
    Label Studio's own message, never the token.
    """

    def version(self) -> dict:
        """Label Studio's `/api/version` (answers without a token)."""
        return self.get_json("/api/version", authenticate=False)

    def current_user(self) -> dict:
        """Who the token belongs to: the cheapest call that proves the token works."""
        return self.get_json("/api/current-user/whoami")
