"""HTTP plumbing shared by every part of the client: one `requests.Session`,
retries, authentication and the translation of failures into LabelStudioError.

Connection errors are retried for every method (the request never reached
Label Studio); read timeouts only for idempotent methods, so a slow
`POST /api/ml` is never sent twice and never creates a duplicate backend.
"""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from lsml.labelstudio.addresses import AddressPolicy, guarded_adapter
from lsml.labelstudio.auth import (
    LEGACY,
    PERSONAL_ACCESS_TOKEN,
    LegacyTokenAuth,
    PersonalAccessTokenAuth,
    clean_token,
    token_kind,
)
from lsml.labelstudio.errors import (
    LabelStudioError,
    LabelStudioUnexpectedResponse,
    LabelStudioUnreachable,
    response_error_text,
)
from lsml.labelstudio.origin import origin

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class RedirectRefused(LabelStudioError):
    """Label Studio's origin redirected a request to another origin, and following would carry a credential."""

    def __init__(self, message: str, *, method: str = "", path: str = "") -> None:
        super().__init__(None, message, method=method, path=path)


class _OriginBoundSession(requests.Session):
    """Label Studio's session: no credential ever follows a redirect to another origin.

    requests drops `Authorization` when the host or port changes, but keeps the
    session's cookies for any port of the same host (cookies are not port-scoped),
    keeps the header on an http -> https change of the same host, and re-sends a
    307/308's *body*, such as a personal access token's `{"refresh": <token>}`.
    So: with `follow_foreign=False` (the API session) a redirect to another origin
    is refused (`RedirectRefused`); Label Studio's API never answers one. With
    `follow_foreign=True` (media: Label Studio's presign URLs redirect to cloud
    storage) a GET follows without `Authorization` and cookies, and a redirect
    that would re-send a body is refused all the same.
    """

    def __init__(self, url: str, *, follow_foreign: bool = False) -> None:
        super().__init__()
        self._origin = origin(url)
        self._follow_foreign = follow_foreign

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        target = super().get_redirect_target(resp)
        if target is None:
            return None
        location = urljoin(resp.url, target)
        if origin(location) == self._origin or origin(resp.url) != self._origin:
            return target
        keeps_body = resp.status_code in (307, 308) and resp.request.body is not None
        if not self._follow_foreign or keeps_body:
            method = resp.request.method or "GET"
            shown = (resp.url or "").split("?", 1)[0]
            resp.close()  # the redirect's connection goes back to the pool; nothing is sent further
            raise RedirectRefused(
                f"{shown} redirected ({resp.status_code}) to another origin, {origin(location) or 'not http(s)'}; "
                "refusing to follow, as a request to Label Studio may carry its token (in a header or, for a "
                "personal access token's refresh, in the body). Set the Label Studio URL "
                "(LABEL_STUDIO_URL, --ls-url) to the address Label Studio answers on",
                method=method,
                path=urlsplit(shown).path,
            )
        return target

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        super().rebuild_auth(prepared_request, response)
        if origin(prepared_request.url) != self._origin:
            prepared_request.headers.pop("Authorization", None)
            prepared_request.headers.pop("Cookie", None)


_T = TypeVar("_T", bound="Transport")


class Transport:
    """Base of LabelStudioClient: knows how to talk, not what to say."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        media_policy: AddressPolicy | None = None,
    ) -> None:
        """`media_policy`: which addresses media downloads may connect to (`lsml.labelstudio.addresses`);
        default: public addresses, plus this Label Studio's own origin on any non-link-local address."""
        if not url or not url.startswith(("http://", "https://")):
            raise ValueError(f"Label Studio URL must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._token = clean_token(token)
        self.media_policy = media_policy or AddressPolicy(trusted_origins=frozenset({origin(self.url) or ""}))
        self.session = _OriginBoundSession(self.url)
        retry = Retry(
            total=retries,
            connect=retries,
            read=1,
            status=0,
            other=0,
            allowed_methods=IDEMPOTENT_METHODS,
            backoff_factor=0.3,
            raise_on_status=False,
        )
        adapter = HTTPAdapter(max_retries=retry)
        # Third-party hosts get a session of their own: Label Studio's cookies are
        # scoped by host, not port, and must not reach another server on the same host.
        self.foreign_session = requests.Session()
        for session in (self.session, self.foreign_session):
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        # Media (URLs from task data, untrusted) goes through a session of its own whose every
        # connection obeys the address policy, redirects included; it holds no cookies.
        self.media_session = _OriginBoundSession(self.url, follow_foreign=True)
        media_adapter = guarded_adapter(self.media_policy, max_retries=retry)
        self.media_session.mount("http://", media_adapter)
        self.media_session.mount("https://", media_adapter)
        self.auth: LegacyTokenAuth | PersonalAccessTokenAuth | None = None
        if self._token:
            if token_kind(self._token) == PERSONAL_ACCESS_TOKEN:
                self.auth = PersonalAccessTokenAuth(
                    self._token, self.absolute_url("/api/token/refresh/"), self.session.post, timeout
                )
            else:
                self.auth = LegacyTokenAuth(self._token, self.url)

    @property
    def token_kind(self) -> str | None:
        """LEGACY, PERSONAL_ACCESS_TOKEN, or None without a token."""
        return self.auth.kind if self.auth else None

    def absolute_url(self, path_or_url: str) -> str:
        """Label Studio hands out paths like `/data/upload/1/x.png`; make them URLs."""
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return self.url + "/" + path_or_url.lstrip("/")

    def is_own_url(self, url: str) -> bool:
        """Whether `url` points at this Label Studio's origin (and so may carry its token)."""
        if not url.startswith(("http://", "https://")):
            return True
        return origin(url) == origin(self.url)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        json: Any = None,
        data: Any = None,
        files: Any = None,
        timeout: float | None = None,
        stream: bool = False,
        authenticate: bool = True,
        media: bool = False,
    ) -> requests.Response:
        """Send one request; return the 2xx response or raise LabelStudioError.

        The token goes only to this Label Studio's origin, whatever `authenticate` says. `media`: a URL
        from task data, fetched under the address policy (`media_session`)."""
        method = method.upper()
        url = self.absolute_url(path)
        shown_path = path if not path.startswith(("http://", "https://")) else url.split("?", 1)[0]
        own = self.is_own_url(url)
        auth = self.auth if authenticate and own else None
        if media:
            session: requests.Session = self.media_session
        else:
            session = self.session if own else self.foreign_session
        for attempt in (1, 2):
            try:
                response = session.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    data=data,
                    files=files,
                    auth=auth,
                    timeout=timeout or self.timeout,
                    stream=stream,
                )
            except LabelStudioError:
                raise
            except requests.RequestException as exc:
                raise LabelStudioUnreachable(
                    f"cannot reach Label Studio at {self.url} ({type(exc).__name__})",
                    method=method,
                    path=shown_path,
                ) from None
            if response.status_code == 401 and auth is not None and attempt == 1 and auth.handle_unauthorized():
                response.close()
                continue  # a personal access token's access part expired or was revoked: mint another once
            break
        if response.status_code >= 400:
            raise self._error(response, method, shown_path)
        return response

    def get_json(self, path: str, **kwargs: Any) -> Any:
        return self._json_or_none(self.request("GET", path, **kwargs))

    def post_json(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self._json_or_none(self.request("POST", path, json=body, **kwargs))

    def patch_json(self, path: str, body: Any, **kwargs: Any) -> Any:
        return self._json_or_none(self.request("PATCH", path, json=body, **kwargs))

    def _json_or_none(self, response: requests.Response) -> Any:
        """The body's JSON, None for an empty answer; LabelStudioUnexpectedResponse for anything else."""
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            content_type = response.headers.get("Content-Type") or "no Content-Type"
            url = self._scrub(response.url.split("?", 1)[0])
            raise LabelStudioUnexpectedResponse(
                response.status_code,
                url,
                f"{content_type} ({len(response.content)} bytes)",
                method=response.request.method or "GET",
            ) from None

    def delete(self, path: str, **kwargs: Any) -> None:
        self.request("DELETE", path, **kwargs)

    def close(self) -> None:
        self.session.close()
        self.foreign_session.close()
        self.media_session.close()

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _error(self, response: requests.Response, method: str, path: str) -> LabelStudioError:
        message = response_error_text(response, "error")
        if response.status_code == 401:
            message += f" (token kind: {self.token_kind or 'none given'}; check --api-key / LABEL_STUDIO_API_KEY)"
        return LabelStudioError(response.status_code, self._scrub(message), method=method, path=path)

    def _scrub(self, text: str) -> str:
        if self._token and self._token in text:
            text = text.replace(self._token, "***")
        return text

    def __repr__(self) -> str:  # never the token
        return f"{type(self).__name__}({self.url!r}, token_kind={self.token_kind!r})"


__all__ = ["Transport", "RedirectRefused", "LEGACY", "PERSONAL_ACCESS_TOKEN"]
