"""Which Label Studio a model talks to, and with which token: one URL and one token, always together.

A token is a credential *for one origin* (scheme, host, port). Were the URL
and the token chosen independently (the URL from `/setup`, the token from
`LABEL_STUDIO_API_KEY`), anyone who could reach the unauthenticated `/setup`
could name their own host and receive the configured key with the next
training (SECURITY.md, "Holes found and closed"). The rules:

* `LABEL_STUDIO_API_KEY` is only ever sent to the origin of `LABEL_STUDIO_URL`
  (a key without a URL is sent nowhere);
* with `LABEL_STUDIO_URL` configured, a `/setup` hostname on another origin
  is ignored, with a warning naming both origins (never the token), and so is
  the token that came with it;
* a token sent with `/setup` goes only to the hostname it came with (or to
  the configured URL, when `/setup` named no other origin).
"""

from __future__ import annotations

import logging
import threading

from lsml.labelstudio.addresses import AddressPolicy
from lsml.labelstudio.origin import Credential, origin, same_origin
from lsml.settings import Settings

logger = logging.getLogger(__name__)

__all__ = [
    "STATE_KEY",
    "Credential",
    "configured",
    "media_policy",
    "origin",
    "resolve",
    "same_origin",
]

#: The state key `/setup` stores its hostname and token under, as one value so they never come apart.
STATE_KEY = "label_studio"

_warned: set[tuple] = set()
_warned_lock = threading.Lock()


#: What `/setup`'s `hostname` may be: empty, or an http(s) URL with a plain host name or address and a
#: valid port. `server/bodies.py`'s SetupBody checks it and /openapi.json publishes it from there.
_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
SETUP_HOSTNAME_PATTERN = rf"^(https?://[A-Za-z0-9.-]+(:{_PORT})?(/[!-~]*)?)?$"


def configured(settings: Settings) -> Credential:
    """LABEL_STUDIO_URL with LABEL_STUDIO_API_KEY: the key is bound to that URL's origin (no URL: sent nowhere)."""
    return Credential(settings.label_studio_url, settings.label_studio_api_key)


def media_policy(settings: Settings, credential: Credential | None = None) -> AddressPolicy:
    """Where this backend's media downloads may connect (`lsml.labelstudio.addresses`).

    Private and loopback addresses: with LSML_MEDIA_ALLOW_PRIVATE, else only on LABEL_STUDIO_URL's
    origin, and on the origin of `credential` (the Label Studio `/setup` named) when Basic auth is on
    (then only Label Studio could call `/setup`). With auth off `/setup`'s hostname is anyone's choice.
    """
    trusted = {origin(settings.label_studio_url)}
    if credential is not None and settings.basic_auth_enabled:
        trusted.add(origin(credential.url))
    trusted.discard(None)
    return AddressPolicy(allow_private=settings.media_allow_private, trusted_origins=frozenset(o for o in trusted if o))


def _warn_once(key: tuple, message: str, *args: object) -> None:
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    logger.warning(message, *args)


def setup_value(hostname: str | None, access_token: str | None) -> dict:
    """What `/setup` stores under STATE_KEY: the hostname and the token it came with."""
    return {"hostname": hostname or None, "access_token": access_token or None}


def rejects_setup_hostname(settings: Settings, hostname: str | None) -> bool:
    """Whether `/setup`'s `hostname` must be ignored (it names another origin than LABEL_STUDIO_URL); warns."""
    configured = settings.label_studio_url
    if not configured or not hostname or same_origin(hostname, configured):
        return False
    _warn_once(
        ("setup", origin(hostname) or hostname, origin(configured)),
        "/setup named Label Studio at %s but LABEL_STUDIO_URL is %s: ignoring that hostname and the "
        "token sent with it (a credential goes only to the origin it was configured for)",
        origin(hostname) or repr(hostname),
        origin(configured),
    )
    return True


def resolve(settings: Settings, stored: object) -> Credential:
    """The credential for a project: `stored` is what `/setup` left under STATE_KEY (or None)."""
    stored = stored if isinstance(stored, dict) else {}
    hostname = stored.get("hostname") if isinstance(stored.get("hostname"), str) else None
    setup_token = stored.get("access_token") if isinstance(stored.get("access_token"), str) else None
    configured = settings.label_studio_url
    if configured:
        if rejects_setup_hostname(settings, hostname):
            return Credential(configured, settings.label_studio_api_key)
        return Credential(configured, settings.label_studio_api_key or setup_token)
    if settings.label_studio_api_key:
        _warn_once(
            ("key-without-url",),
            "LABEL_STUDIO_API_KEY is set without LABEL_STUDIO_URL: the key is sent "
            "nowhere (set LABEL_STUDIO_URL to the Label Studio it belongs to)",
        )
    if hostname and origin(hostname) is None:
        return Credential(None, None)
    return Credential(hostname, setup_token if hostname else None)
