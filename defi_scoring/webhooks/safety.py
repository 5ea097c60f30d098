"""Which URLs a webhook may call. `https` only, unless the host is allow-listed
(DEFI_SCORING_WEBHOOK_ALLOW, for local receivers); no credentials in the URL; an address that is
private, loopback, link-local (169.254.x: cloud metadata), multicast, reserved or otherwise not
globally routable is refused unless its host is allow-listed. Checked when a subscription is made or
changed (the host is resolved then) and again at each delivery: the dispatcher's resolver refuses such
addresses, and the connection goes to the address it checked (no second lookup to rebind)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit


class UnsafeUrl(ValueError):
    """The URL may not be called; the message says why."""


class UnsafeAddress(OSError):
    """A host resolved to an address that may not be called (raised from the dispatcher's resolver)."""


def address_problem(address: str) -> str | None:
    """Why this IP address may not be called (None: it may)."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for test, name in (
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_private", "private"),
        ("is_multicast", "multicast"),
        ("is_unspecified", "unspecified"),
        ("is_reserved", "reserved"),
    ):
        if getattr(ip, test):
            return f"{ip} is a {name} address"
    if not ip.is_global:
        return f"{ip} is not a globally routable address"
    return None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%")[0])
        return True
    except ValueError:
        return False


@dataclass(frozen=True)
class UrlPolicy:
    allow: frozenset[str] = frozenset()

    def allowed_host(self, host: str) -> bool:
        return host.lower().strip("[]") in self.allow

    def check_syntax(self, url: str) -> tuple[str, str, int]:
        """(scheme, host, port) of a URL that passes the rules that need no lookup; raises UnsafeUrl."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise UnsafeUrl(f"not a valid URL: {exc}") from exc
        scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
        if scheme not in ("http", "https") or not host:
            raise UnsafeUrl("the URL must be an absolute http(s) URL with a host")
        if parts.username is not None or parts.password is not None:
            raise UnsafeUrl("credentials in the URL are not allowed; the signature authenticates deliveries")
        if scheme != "https" and not self.allowed_host(host):
            raise UnsafeUrl(
                f"only https URLs are allowed; {host} is not in DEFI_SCORING_WEBHOOK_ALLOW (for local receivers)"
            )
        if _is_ip(host) and not self.allowed_host(host):
            problem = address_problem(host)
            if problem:
                raise UnsafeUrl(f"{problem}; refused unless {host} is in DEFI_SCORING_WEBHOOK_ALLOW")
        return scheme, host, port or (443 if scheme == "https" else 80)

    def check_addresses(self, host: str, addresses: Iterable[str]) -> None:
        """Raise UnsafeAddress if `host` (not allow-listed) resolved to an address that may not be called."""
        if self.allowed_host(host):
            return
        for address in addresses:
            problem = address_problem(address)
            if problem:
                raise UnsafeAddress(f"{host} resolves to {address}: {problem}; refused unless allow-listed")

    def check_new(self, url: str) -> str:
        """At creation: the syntax rules, then the host's current addresses. Returns the URL."""
        _, host, port = self.check_syntax(url)
        if self.allowed_host(host) or _is_ip(host):
            return url
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise UnsafeUrl(f"{host} does not resolve ({exc}); its addresses cannot be checked") from exc
        try:
            self.check_addresses(host, [info[4][0] for info in infos])
        except UnsafeAddress as exc:
            raise UnsafeUrl(str(exc)) from exc
        return url
