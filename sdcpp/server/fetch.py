"""Fetching a client-named URL without letting it reach into our own network (SSRF).

``GET /api/image/download`` makes the server open a URL a client chose. Every hop, redirects
included, goes through the same rules:

1. scheme ``http`` or ``https`` only; no credentials in the URL; a host is required;
2. names meaning "this machine" (``localhost``, ``*.localhost``, RFC 6761) are refused unresolved;
3. the host is resolved once and EVERY address must pass the policy (default ``is_public``):
   a name with one public and one private address is refused, because which of them a
   connection would use is not ours to decide;
4. the connection goes to a validated address itself, never to the name again, so DNS that
   changes its answer between check and connect (rebinding) cannot move it; the Host header,
   TLS SNI and the certificate check still use the name;
5. redirects (at most ``max_redirects``) are followed by hand, each Location checked by 1-4;
6. the body may hold at most ``max_bytes`` (Content-Length first, then counted while reading)
   and all hops together get ``timeout`` seconds (every socket wait gets only what is left).

Name resolution itself has no stdlib timeout (``getaddrinfo`` waits as the system resolver is
configured); the deadline is checked again right after it. Resolver, policy and connector are
parameters so tests can point a ``Fetcher`` at a loopback server and watch that nothing else is
contacted; the server uses the defaults.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from .exceptions import DownloadFailed, DownloadTimeout, PayloadTooLarge, UrlNotAllowed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]
Policy = Callable[[IPAddress, int], bool]
Connector = Callable[[tuple[str, int], float], socket.socket]

REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the low 32 bits are an IPv4 address
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: local-use, never public
# Special-purpose ranges (IANA registries) that an older Python's ``is_global`` calls global:
# 3.11.7 says so of 192.0.0.8 (RFC 7600), 6to4 relays, 3fff::/20 (documentation, RFC 9637)
# and 5f00::/16 (SRv6, RFC 9602). None of them holds an image server.
_NOT_PUBLIC = tuple(
    ipaddress.ip_network(net)
    for net in ("192.0.0.0/24", "192.88.99.0/24", "2001:db8::/32", "3fff::/20", "5f00::/16")
)
_CHUNK = 64 * 1024


def is_public(ip: IPAddress) -> bool:
    """True for an address on the public internet; IPv6 forms that carry an IPv4 address
    (mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::a.b.c.d``, 6to4 ``2002:AABB:CCDD::``) are
    judged by that IPv4 address, and Teredo (which tunnels to any IPv4 host) is refused."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public(ip.ipv4_mapped)
        if ip.teredo is not None or ip in _NAT64_LOCAL:
            return False
        if ip.sixtofour is not None:
            return is_public(ip.sixtofour)
        if ip in _NAT64:
            return is_public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if any(ip in net for net in _NOT_PUBLIC):
        return False
    # is_global alone misses nothing today, the explicit list keeps the intent readable
    return ip.is_global and not (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def public_only(ip: IPAddress, port: int) -> bool:
    return is_public(ip)


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def refused(message: str) -> UrlNotAllowed:
    return UrlNotAllowed(message)


@dataclass(frozen=True, slots=True)
class Target:
    """One checked hop: where to connect (addresses) and what to ask for (host, path)."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Fetched:
    url: str  # after redirects
    content_type: str
    body: bytes


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to ``address`` while the request names ``host`` (Host header)."""

    def __init__(
        self, host: str, port: int, address: str, timeout: float, connector: Connector
    ) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address, self._connector, self._timeout = address, connector, timeout

    def connect(self) -> None:
        self.sock = self._connector((self._address, self.port), self._timeout)


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    default_port = 443

    def __init__(
        self,
        host: str,
        port: int,
        address: str,
        timeout: float,
        connector: Connector,
        tls: ssl.SSLContext,
    ) -> None:
        super().__init__(host, port, address, timeout, connector)
        self._tls = tls

    def connect(self) -> None:
        super().connect()
        # SNI and certificate verification against the name, not the address we dialled
        self.sock = self._tls.wrap_socket(self.sock, server_hostname=self.host)


@dataclass
class Fetcher:
    resolver: Resolver = system_resolver
    allow: Policy = public_only
    connector: Connector = socket.create_connection
    max_bytes: int = 20 * 2**20
    timeout: float = 10.0
    max_redirects: int = 3
    tls: ssl.SSLContext = field(default_factory=ssl.create_default_context)
    # names the operator trusts to be private (settings.download_trusted_hosts): exempt from
    # the public-address rule, nothing else; lower case, no trailing dot
    trusted_hosts: frozenset[str] = frozenset()

    def check(self, url: str) -> Target:
        """Rules 1-3 for one URL; raises 400 URL_NOT_ALLOWED, connects to nothing."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise refused(f"not a valid URL: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise refused(f"only http and https URLs are allowed, not {scheme or 'none'!r}")
        if "@" in parts.netloc:
            raise refused("credentials in the URL are not allowed")
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise refused("the URL has no host")
        trusted = host.lower() in self.trusted_hosts
        if not trusted and (host == "localhost" or host.endswith(".localhost")):
            raise refused(f"host {host!r} is this machine")
        port = port or (443 if scheme == "https" else 80)
        addresses = self._resolve(host, port)
        for address in addresses:
            if not trusted and not self.allow(ipaddress.ip_address(address), port):
                raise refused(f"host {host!r} resolves to a non-public address ({address})")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return Target(scheme, host, port, path, addresses)

    def _resolve(self, host: str, port: int) -> tuple[str, ...]:
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            return (str(literal),)
        try:
            found = self.resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise DownloadFailed(f"cannot resolve {host!r}: {exc}") from None
        addresses: list[str] = []
        for raw in found:
            try:
                # scope ids ("fe80::1%eth0") only occur on link-local, which the policy refuses
                ip = ipaddress.ip_address(raw.split("%", 1)[0])
            except ValueError:
                raise refused(f"host {host!r} resolves to something odd: {raw!r}") from None
            if str(ip) not in addresses:
                addresses.append(str(ip))
        if not addresses:
            raise DownloadFailed(f"{host!r} has no address")
        return tuple(addresses)

    def fetch(self, url: str) -> Fetched:
        """GET ``url`` under rules 1-6; blocking (call it from a worker thread)."""
        deadline = time.monotonic() + self.timeout
        for _ in range(self.max_redirects + 1):
            target = self.check(url)
            _remaining(deadline)
            conn = self._connect(target, deadline)
            response: http.client.HTTPResponse | None = None
            try:
                response = self._request(conn, target, deadline)
                if response.status in REDIRECTS:
                    location = response.getheader("Location")
                    if not location:
                        raise DownloadFailed("a redirect without a Location")
                    url = urljoin(url, location.strip())
                    continue
                if response.status != 200:
                    raise DownloadFailed(f"the server answered HTTP {response.status}")
                body = self._read(conn, response, deadline)
                return Fetched(url, response.getheader("Content-Type") or "", body)
            finally:
                if response is not None:
                    response.close()  # also on early exits: the unread body holds the socket
                conn.close()
        raise DownloadFailed(f"more than {self.max_redirects} redirects")

    def _connect(self, target: Target, deadline: float) -> _PinnedHTTPConnection:
        error: Exception | None = None
        for address in target.addresses:  # every one of them passed the policy
            conn: _PinnedHTTPConnection
            timeout = _remaining(deadline)
            if target.scheme == "https":
                conn = _PinnedHTTPSConnection(
                    target.host, target.port, address, timeout, self.connector, self.tls
                )
            else:
                conn = _PinnedHTTPConnection(
                    target.host, target.port, address, timeout, self.connector
                )
            try:
                conn.connect()
                return conn
            except TimeoutError:
                conn.close()
                raise _timeout() from None
            except OSError as exc:
                conn.close()
                error = exc
        raise DownloadFailed(f"cannot connect to {target.host!r}: {error}")

    def _request(
        self, conn: _PinnedHTTPConnection, target: Target, deadline: float
    ) -> http.client.HTTPResponse:
        headers = {"User-Agent": "sdcpp-image-download", "Accept": "image/*"}
        try:
            conn.request("GET", target.path, headers=headers)
            _settimeout(conn, deadline)
            return conn.getresponse()
        except TimeoutError:
            raise _timeout() from None
        except http.client.InvalidURL as exc:
            raise refused(f"not a valid URL: {exc}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise DownloadFailed(f"request failed: {exc}") from None

    def _read(
        self, conn: _PinnedHTTPConnection, response: http.client.HTTPResponse, deadline: float
    ) -> bytes:
        too_big = PayloadTooLarge(f"the image is larger than {self.max_bytes} bytes")
        length = response.getheader("Content-Length")
        if length is not None and length.strip().isdigit() and int(length) > self.max_bytes:
            raise too_big
        chunks: list[bytes] = []
        total = 0
        try:
            while True:
                _settimeout(conn, deadline)
                chunk = response.read(_CHUNK)
                if not chunk:
                    if length is not None and length.strip().isdigit() and total < int(length):
                        # http.client ends a short body silently on read(amt): a lie or a cut
                        short = int(length) - total
                        raise http.client.HTTPException(f"it ended {short} bytes early")
                    return b"".join(chunks)
                total += len(chunk)
                if total > self.max_bytes:
                    raise too_big
                chunks.append(chunk)
        except TimeoutError:
            raise _timeout() from None
        except (OSError, http.client.HTTPException) as exc:
            raise DownloadFailed(f"reading the body failed: {exc}") from None


def _timeout() -> DownloadTimeout:
    return DownloadTimeout("the download took too long")


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise _timeout()
    return left


def _settimeout(conn: _PinnedHTTPConnection, deadline: float) -> None:
    # every socket wait gets only the time left, so a slow drip cannot outlast the deadline
    if conn.sock is not None:
        conn.sock.settimeout(_remaining(deadline))
