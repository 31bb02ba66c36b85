"""Origins (scheme, host, port) and the credential bound to one: the vocabulary of "where may a token go".

A token is a credential *for one origin*. `lsml.credentials` decides which
Label Studio URL and token a project uses; `lsml.labelstudio.connect` builds
every client from a URL and the credentials that may apply to it. Both live on
these three names. They are here, in the client package, so the operator (which
may import only `lsml.labelstudio`) applies the same rule.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str | None) -> str | None:
    """`scheme://host:port` of an http(s) URL (lower case, default port made explicit); None for anything else.

    The URL is read as requests will send it, not as `urlsplit` reads the raw string: the two disagree on
    some strings, and a token decided on by one parser and sent by the other goes to the wrong host. With
    `https://evil.example\\@ls.example/`, `urlsplit` sees the host `ls.example` (what follows the last
    `@`) while urllib3 connects to `evil.example` (a backslash ends its host); requests requotes the
    backslash into the path first, so the origin here is the one the request reaches."""
    if not isinstance(url, str) or not url:
        return None
    try:
        parts = urlsplit(_as_sent(url.strip()))
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return f"{scheme}://{parts.hostname.lower()}:{port or _DEFAULT_PORTS[scheme]}"


def _as_sent(url: str) -> str:
    """`url` as requests prepares it for the wire (requoted, IDNA host); raises ValueError when it refuses it."""
    prepared = requests.PreparedRequest()
    prepared.prepare_url(url, None)  # MissingSchema and InvalidURL are ValueErrors
    assert prepared.url is not None
    return prepared.url


def same_origin(a: str | None, b: str | None) -> bool:
    """Whether two URLs share scheme, host and port (False when either is not an http(s) URL)."""
    first = origin(a)
    return first is not None and first == origin(b)


@dataclass(frozen=True)
class Credential:
    """A Label Studio URL and the token that may be sent to it (None: send no token).

    A credential without a URL (`Credential(None, key)`) is sent nowhere.
    """

    url: str | None
    token: str | None = dataclasses.field(default=None, repr=False)

    def token_for(self, url: str | None) -> str | None:
        """The token, if `url` is on this credential's origin; else None."""
        return self.token if same_origin(url, self.url) else None
