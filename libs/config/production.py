"""Production mode: refusing to start with a development default.

With `PODIUM_ENV=production` a service checks its settings before it starts
anything: `refuse_unsafe_production` asks the settings object for its
`production_problems()` (the rules of `PodiumSettings`, plus each service's own,
which extend them), logs one line per offending setting, naming its
environment variable, and exits with status 78 (EX_CONFIG). Development mode,
the default, checks nothing: the dev stack runs with no configuration.

The rules are pure (values only: no file is opened and no address resolved);
these helpers are what they share.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from libs.config.settings import PodiumSettings

log = logging.getLogger("podium.config")

EX_CONFIG = 78  # sysexits.h: configuration error
HS256_MIN_KEY_BYTES = 32  # RFC 7518 3.2: a key at least as long as the hash output

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
# RFC 2606 and RFC 6761: names that never point at anybody's deployment.
_RESERVED_SUFFIXES = (".example", ".test", ".invalid", ".localhost", ".local")
_RESERVED_DOMAINS = {"example", "example.com", "example.net", "example.org", "test", "invalid", "localhost"}


def is_local_host(host: str) -> bool:
    """A loopback or unspecified address (127.0.0.1, ::1, 0.0.0.0, localhost): no other machine
    reaches this process there."""
    host = host.strip().strip("[]").lower().rstrip(".")
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def host_of(address: str) -> str:
    """The host of `host:port`, `[v6]:port`, `scheme://host:port` or a bare host."""
    address = address.strip()
    if "://" in address:
        address = address.split("://", 1)[1]
    if address.startswith("["):
        return address[1 : address.find("]")] if "]" in address else address[1:]
    host, colon, port = address.rpartition(":")
    return host if colon and port.isdigit() and ":" not in host else address


def namespace_relative_hosts(addresses: list[str]) -> list[str]:
    """Those of `addresses` named relative to a Kubernetes namespace or search domain: one or two
    labels (`relay`, `media-relay-0.media-relay-headless`), or ending in `.svc`. They resolve only
    inside that namespace, so a gateway in another cannot dial them."""
    found = []
    for address in addresses:
        host = host_of(address).rstrip(".")
        try:
            ipaddress.ip_address(host)
            continue
        except ValueError:
            pass
        if host.count(".") < 2 or host.endswith(".svc"):
            found.append(address)
    return found


def local_addresses(addresses: list[str]) -> list[str]:
    """Those of `addresses` whose host is local (see `is_local_host`)."""
    return [a for a in addresses if is_local_host(host_of(a))]


def is_reserved_domain(host: str) -> bool:
    """A name reserved for examples and tests (podium.example, example.com, *.test, ...)."""
    host = host.lower().rstrip(".")
    return (
        host in _RESERVED_DOMAINS
        or host.endswith(_RESERVED_SUFFIXES)
        or any(host.endswith("." + domain) for domain in _RESERVED_DOMAINS)
    )


def public_url_problem(variable: str, url: str) -> str | None:
    """What is wrong with `url` as a URL people outside are sent to, or None."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host or is_local_host(host) or is_reserved_domain(host):
        return f"{variable} is {url}, a placeholder: set the public URL of your own deployment"
    if parts.scheme != "https":
        return f"{variable} is {url}: not https, so the token in it would travel in the clear"
    return None


def hs256_key_problem(key: str, development_key: str) -> str | None:
    """What is wrong with `key` as an HS256 signing key ("is the development key; ..."), or None.
    Never quotes the key."""
    if key == development_key:
        return "is the development key; set a secret of your own"
    size = len(key.encode())
    if size < HS256_MIN_KEY_BYTES:
        return (
            f"is {size} bytes; an HS256 key needs at least {HS256_MIN_KEY_BYTES} (RFC 7518), "
            "e.g. `openssl rand -base64 48`"
        )
    return None


def refuse_unsafe_production(settings: PodiumSettings) -> None:
    """In production mode, exits (status 78) after logging each problem of `settings`; else returns."""
    if settings.env != "production":
        return
    problems = settings.production_problems()
    for problem in problems:
        log.critical("production mode: %s", problem)
    if problems:
        log.critical("production mode: refusing to start (%d setting(s) above)", len(problems))
        raise SystemExit(EX_CONFIG)
