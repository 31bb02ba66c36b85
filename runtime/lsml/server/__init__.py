"""The HTTP server: Flask app factory plus one module per concern (routes, auth, errors, metrics, openapi)."""

from lsml.server.app import Runtime, create_app

__all__ = ["Runtime", "create_app"]
