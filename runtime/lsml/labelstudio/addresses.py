"""Which addresses a media download may connect to: the fence against SSRF through task data.

Task data is untrusted (SECURITY.md), and a model's `get_local_path` fetches
any http(s) URL it names. Without a fence a task saying
`http://169.254.169.254/latest/meta-data/` made the backend query the cloud's
metadata service, and `http://127.0.0.1:6379/` or `http://10.0.0.5/admin`
reached services only the backend's network can see. The rule:

* link-local addresses (169.254.0.0/16, fe80::/10, where cloud metadata
  services live), the known metadata addresses, unspecified (0.0.0.0, ::),
  multicast and reserved addresses are refused always;
* loopback, private and every other non-global address only when
  `LSML_MEDIA_ALLOW_PRIVATE` is on, or when the URL is on a *trusted origin*
  (LABEL_STUDIO_URL's: Label Studio itself often runs on a private or loopback
  address);
* public addresses are allowed.

The check runs where the socket is opened (`_new_conn` of urllib3's
connection), on the addresses the name resolved to, and the socket connects
to the very address that was checked: a DNS answer that changes between the
check and the connect (rebinding) cannot slip through, and every redirect
hop opens its own checked connection. A refusal raises `MediaAddressRefused`
before any packet is sent to the refused address.

Not covered: with an HTTP(S) proxy from the environment (`HTTPS_PROXY`...)
the proxy resolves the media host and connects for us; its own egress rules
apply, not these.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family, create_connection

from lsml.labelstudio.errors import LabelStudioError
from lsml.labelstudio.origin import origin

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Cloud metadata services outside link-local ranges (AWS IPv6, Alibaba Cloud); 169.254.169.254 is link-local.
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")})
_ZERO_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # "this network": connecting to 0.x reaches the host itself


class MediaAddressRefused(LabelStudioError):
    """A media URL resolved only to addresses the policy refuses; nothing was sent to them."""

    def __init__(self, message: str) -> None:
        super().__init__(None, message)

    def __str__(self) -> str:
        return self.message


def _plain(address: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address (::ffff:127.0.0.1) as the IPv4 address it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def always_refused(address: IPAddress) -> str | None:
    """Why `address` is never a media host (None: it may be)."""
    address = _plain(address)
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_link_local:
        return "a link-local address (cloud metadata services live there)"
    if address.is_unspecified or (isinstance(address, ipaddress.IPv4Address) and address in _ZERO_NETWORK):
        return "an unspecified address"
    if address.is_multicast or (address.is_reserved and not address.is_loopback):  # ::1 lies in reserved ::/8
        return "a multicast or reserved address"
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """What a media download may connect to. `trusted_origins`: origins whose private addresses are fine."""

    allow_private: bool = False
    trusted_origins: frozenset[str] = frozenset()

    def refusal(self, address: IPAddress, url_origin: str | None) -> str | None:
        """Why connecting to `address` for a URL of `url_origin` is refused; None when it is allowed."""
        reason = always_refused(address)
        if reason is not None:
            return reason
        plain = _plain(address)
        if plain.is_global or self.allow_private or (url_origin is not None and url_origin in self.trusted_origins):
            return None
        kind = "a loopback" if plain.is_loopback else "a private (non-global)"
        return (
            f"{kind} address, refused for media unless LSML_MEDIA_ALLOW_PRIVATE is on or the URL is on "
            "LABEL_STUDIO_URL's origin"
        )

    def resolve(self, scheme: str, host: str, port: int) -> list[tuple[Any, ...]]:
        """`getaddrinfo` results for host:port the policy allows; MediaAddressRefused when none is."""
        url_origin = origin(f"{scheme}://{_bracketed(host)}:{port}")
        results = socket.getaddrinfo(host.strip("[]"), port, allowed_gai_family(), socket.SOCK_STREAM)
        allowed: list[tuple[Any, IPAddress, str | None]] = []
        refused: list[tuple[Any, IPAddress, str | None]] = []
        for result in results:
            address = ipaddress.ip_address(str(result[4][0]).split("%", 1)[0])
            reason = self.refusal(address, url_origin)
            (refused if reason else allowed).append((result, address, reason))
        if not allowed:
            _, address, reason = refused[0]
            raise MediaAddressRefused(f"media host {host!r} resolves to {address}, {reason}")
        return [result for result, _, _ in allowed]


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class _Guarded:
    """Mixin for urllib3's connections: resolve, check, then connect to the checked address itself."""

    policy: AddressPolicy
    scheme: str
    host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any

    def _new_conn(self) -> socket.socket:
        try:
            allowed = self.policy.resolve(self.scheme, self.host, self.port)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc  # type: ignore[arg-type]
        error: OSError | None = None
        for _family, _type, _proto, _name, sockaddr in allowed:
            try:
                # an address literal: getaddrinfo inside create_connection does no second lookup
                return create_connection(
                    (sockaddr[0], sockaddr[1]),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except TimeoutError as exc:
                raise ConnectTimeoutError(self, f"Connection to {self.host} timed out") from exc
            except OSError as exc:
                error = exc
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}")  # type: ignore[arg-type]


def guarded_adapter(policy: AddressPolicy, **kwargs: Any) -> HTTPAdapter:
    """A requests adapter whose connections obey `policy` (kwargs: HTTPAdapter's, e.g. max_retries)."""
    http_conn = type("GuardedHTTPConnection", (_Guarded, HTTPConnection), {"policy": policy, "scheme": "http"})
    https_conn = type("GuardedHTTPSConnection", (_Guarded, HTTPSConnection), {"policy": policy, "scheme": "https"})
    pools = {
        "http": type("GuardedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
        "https": type("GuardedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
    }

    class GuardedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **pool_kwargs: Any) -> None:
            super().init_poolmanager(*args, **pool_kwargs)
            self.poolmanager.pool_classes_by_scheme = pools

    return GuardedAdapter(**kwargs)
