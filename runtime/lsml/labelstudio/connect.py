"""`connect`: the one place a Label Studio client is built, so a token only ever goes to its own origin.

Every client in lsml (the model's, pre-labelling's, the CLI's, the operator's)
is made here from the URL to talk to and the credentials that may apply. The
token sent is the first credential's *whose origin is the URL's*; a credential
for another origin, or one without a URL (`LABEL_STUDIO_API_KEY` without
`LABEL_STUDIO_URL`), contributes nothing. Callers therefore never pair a URL
from one source with a token from another: before this, pre-labelling took the
URL from `/setup` and the token from `LABEL_STUDIO_API_KEY`, and sent the
configured key to whatever host an unauthenticated `/setup` had named
(SECURITY.md, issue 22 item 1). `tests/runtime/test_security_origin_rule.py`
checks that no other module constructs a client.
"""

from __future__ import annotations

from lsml.labelstudio.addresses import AddressPolicy
from lsml.labelstudio.client import LabelStudioClient
from lsml.labelstudio.origin import Credential


def connect(
    url: str,
    *credentials: Credential,
    timeout: float = 10.0,
    media_policy: AddressPolicy | None = None,
    retries: int | None = None,
) -> LabelStudioClient:
    """A client for `url` carrying the token of the first of `credentials` bound to `url`'s origin (or none).

    `media_policy`: the address policy of its media downloads (default: the
    client's own origin and public addresses; `lsml.credentials.media_policy`
    builds the runtime's from the settings). `retries`: the transport's, when its default does not fit (a
    periodic check retries at its next interval, not now).
    """
    token = next((t for t in (c.token_for(url) for c in credentials) if t), None)
    extra = {} if retries is None else {"retries": retries}
    return LabelStudioClient(url, token, timeout=timeout, media_policy=media_policy, **extra)
