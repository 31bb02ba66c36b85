"""Issue 22 item 10: media URLs from task data may not reach link-local, metadata, loopback or private addresses.

Before, `get_local_path` fetched any http(s) URL a task named: a blind SSRF into the cloud metadata service
(169.254.169.254) and the backend's private network. Now (`lsml.labelstudio.addresses`) link-local and metadata
addresses are refused always, loopback and private ones unless LSML_MEDIA_ALLOW_PRIVATE is on or the URL is on
LABEL_STUDIO_URL's origin, checked on the resolved address and on every redirect hop. The media hosts are real
HTTP servers on free loopback ports (tests.fixtures.http_recorder).
"""

from __future__ import annotations

import ipaddress
import sys
import threading

import pytest

from lsml.labelstudio import AddressPolicy, MediaAddressRefused
from lsml.model import BuildContext, LabelStudioMLBase, build_model
from lsml.state import MemoryState
from tests.fixtures.http_recorder import Answer


def _model(settings, **overrides):
    return build_model(LabelStudioMLBase, "1", None, BuildContext(settings.replace(**overrides), MemoryState()))


def _media(http_recorder):
    media = http_recorder()
    media.routes["/img.png"] = Answer(200, b"png")
    return media


class _SocketEvents:
    """Real `socket.connect` / `socket.getaddrinfo` audit events (PEP 578) of this thread while recording.

    Audit hooks cannot be removed, so one hook is installed for the session and records only while on."""

    hook_installed = False
    current: _SocketEvents | None = None

    def __init__(self) -> None:
        self.connects: list[str] = []
        self.lookups: list[str] = []
        self._thread = threading.get_ident()

    @classmethod
    def _hook(cls, event: str, args: tuple) -> None:
        recorder = cls.current
        if recorder is None or threading.get_ident() != recorder._thread:
            return
        if event == "socket.connect" and isinstance(args[1], tuple):
            recorder.connects.append(str(args[1][0]))
        elif event == "socket.getaddrinfo":
            recorder.lookups.append(str(args[0]))

    def __enter__(self) -> _SocketEvents:
        if not _SocketEvents.hook_installed:
            sys.addaudithook(_SocketEvents._hook)
            _SocketEvents.hook_installed = True
        _SocketEvents.current = self
        return self

    def __exit__(self, *exc: object) -> None:
        _SocketEvents.current = None


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/x", "http://0.0.0.0:9/x"]
)
def test_link_local_and_metadata_are_refused_before_any_connect(settings, tmp_path, url, allow_private):
    model = _model(settings, media_allow_private=allow_private)
    with _SocketEvents() as events, pytest.raises(MediaAddressRefused) as refused:
        model.get_local_path(url, project_dir=str(tmp_path))
    assert events.connects == []  # not a packet was sent there
    assert any(word in str(refused.value) for word in ("link-local", "unspecified"))
    assert list(tmp_path.iterdir()) == []


def test_loopback_media_is_refused_by_default_and_nothing_reaches_it(settings, tmp_path, http_recorder):
    media = _media(http_recorder)
    model = _model(settings)
    for url in (f"{media.url}/img.png", f"{media.url.replace('127.0.0.1', 'localhost')}/img.png"):
        with pytest.raises(MediaAddressRefused, match="LSML_MEDIA_ALLOW_PRIVATE") as refused:
            model.get_local_path(url, project_dir=str(tmp_path))
        assert "loopback" in str(refused.value)
    assert media.requests == []


def test_https_media_is_guarded_too(settings, tmp_path):
    with _SocketEvents() as events, pytest.raises(MediaAddressRefused, match="loopback"):
        _model(settings).get_local_path("https://127.0.0.1:1/x.png", project_dir=str(tmp_path))
    assert events.connects == []


def test_the_setting_allows_private_media(settings, tmp_path, http_recorder):
    media = _media(http_recorder)
    model = _model(settings, media_allow_private=True)
    assert open(model.get_local_path(f"{media.url}/img.png", project_dir=str(tmp_path)), "rb").read() == b"png"


def test_label_studios_own_origin_stays_allowed_on_loopback(settings, tmp_path, http_recorder):
    label_studio = _media(http_recorder)
    label_studio.routes["/data/upload/1/a.png"] = Answer(200, b"uploaded")
    model = _model(settings, label_studio_url=label_studio.url, label_studio_api_key="key")
    assert open(model.get_local_path("/data/upload/1/a.png", project_dir=str(tmp_path)), "rb").read() == b"uploaded"
    assert open(model.get_local_path(f"{label_studio.url}/img.png", project_dir=str(tmp_path)), "rb").read() == b"png"
    assert label_studio.header_values("Authorization") == ["Token key", "Token key"]


def test_a_setup_hostname_is_not_trusted_with_auth_off_but_is_with_basic_auth(settings, tmp_path, http_recorder):
    """With auth off anyone may call /setup, so its hostname earns no exception; with Basic auth on only Label
    Studio can, and its origin is trusted like LABEL_STUDIO_URL's."""
    from lsml import credentials

    label_studio = _media(http_recorder)
    for auth, allowed in (({}, False), ({"basic_auth_user": "u", "basic_auth_pass": "p"}, True)):
        state = MemoryState()
        state.set("1", credentials.STATE_KEY, credentials.setup_value(label_studio.url, "setup-token"))
        model = build_model(LabelStudioMLBase, "1", None, BuildContext(settings.replace(**auth), state))
        if allowed:
            assert open(model.get_local_path("/img.png", project_dir=str(tmp_path)), "rb").read() == b"png"
        else:
            with pytest.raises(MediaAddressRefused):
                model.get_local_path("/img.png", project_dir=str(tmp_path))
    assert len(label_studio.requests) == 1


def test_every_redirect_hop_is_checked(settings, tmp_path, http_recorder):
    """Label Studio (trusted, loopback) redirects a media URL to another loopback port: refused on that hop."""
    inner = _media(http_recorder)
    label_studio = http_recorder()
    label_studio.routes["/data/upload/"] = Answer(302, b"", {"Location": f"{inner.url}/img.png"})
    model = _model(settings, label_studio_url=label_studio.url, label_studio_api_key="key")
    with pytest.raises(MediaAddressRefused, match="loopback"):
        model.get_local_path("/data/upload/1/x.png", project_dir=str(tmp_path))
    assert len(label_studio.requests) == 1 and inner.requests == []


def test_the_checked_address_is_the_one_connected_to(settings, tmp_path, http_recorder):
    """One name lookup per connection, and the socket connects to that lookup's address (no second lookup a
    rebinding DNS could answer differently)."""
    media = _media(http_recorder)
    model = _model(settings, media_allow_private=True)
    url = f"{media.url.replace('127.0.0.1', 'localhost')}/img.png"
    with _SocketEvents() as events:
        model.get_local_path(url, project_dir=str(tmp_path))
    assert events.lookups.count("localhost") == 1, events.lookups
    assert events.connects and all(ipaddress.ip_address(a) for a in events.connects)  # address literals only
    assert len(media.requests) == 1


@pytest.mark.parametrize(
    "address,private_ok,public",
    [
        ("8.8.8.8", True, True),
        ("2001:4860:4860::8888", True, True),
        ("127.0.0.1", True, False),
        ("::1", True, False),
        ("10.1.2.3", True, False),
        ("172.16.0.1", True, False),
        ("192.168.1.1", True, False),
        ("fd12::1", True, False),
        ("100.64.0.1", True, False),
        ("::ffff:127.0.0.1", True, False),
        ("169.254.169.254", False, False),
        ("::ffff:169.254.169.254", False, False),
        ("fe80::1", False, False),
        ("fd00:ec2::254", False, False),
        ("100.100.100.200", False, False),
        ("0.0.0.0", False, False),
        ("::", False, False),
        ("224.0.0.1", False, False),
    ],
)
def test_address_policy(address, private_ok, public):
    ip = ipaddress.ip_address(address)
    assert (AddressPolicy().refusal(ip, "http://h:80") is None) == public
    assert (AddressPolicy(allow_private=True).refusal(ip, "http://h:80") is None) == private_ok
    trusted = AddressPolicy(trusted_origins=frozenset({"http://h:80"}))
    assert (trusted.refusal(ip, "http://h:80") is None) == private_ok
