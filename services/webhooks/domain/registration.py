"""What a webhook registration must be: a URL Podium may POST to, types, Spaces, a note.

    registration(url, event_types, space_ids, description, policy) -> Registration

Every problem of a request is reported at once (one INVALID_ARGUMENT with a
field violation each), and nothing is stored. The URL must be https (http only
where the deployment allows it), name a host, carry no credentials or
fragment, and not aim at a private, loopback or link-local address, nor at a
name that means this machine or its network, unless the deployment allows
them. A name that resolves to such an address is refused at send time too
(`public_address`, used by the sender's resolver), so a DNS change after
registration cannot turn a webhook against the internal network.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from libs.domain.errors import Validator
from libs.domain.identifiers import id_problem
from services.webhooks.domain.event_types import ALL_TYPES, NAMES, WebhookEventType

MAX_URL_LENGTH = 2000
MAX_SPACES = 100
MAX_DESCRIPTION_LENGTH = 200

# Names that never lead off this machine or its own network (RFC 6761, RFC 6762, RFC 8375).
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa", ".localdomain")


@dataclass(frozen=True)
class Owner:
    """Who registered a webhook: a user, or a client gateway (its gateway token's id). A user's
    webhooks hear of the Spaces the user hosts; a gateway's, of every Space (docs/security.md)."""

    id: str
    is_gateway: bool

    @property
    def key(self) -> str:
        return f"{'gateway' if self.is_gateway else 'user'}:{self.id}"


@dataclass(frozen=True)
class UrlPolicy:
    allow_http: bool
    allow_private: bool


@dataclass(frozen=True)
class Registration:
    url: str
    event_types: tuple[WebhookEventType, ...]
    space_ids: tuple[str, ...]
    description: str


def registration(
    url: str,
    event_types: Iterable[int],
    space_ids: Iterable[str],
    description: str,
    policy: UrlPolicy,
) -> Registration:
    """The registration, or InvalidArgument naming every field that is wrong."""
    check = Validator()
    url = url.strip()
    for problem in url_problems(url, policy):
        check.check(False, "url", problem)
    types = list(event_types)
    for i, t in enumerate(types):
        check.check(t in NAMES, f"event_types[{i}]", "must be a WebhookEventType other than UNSPECIFIED")
    spaces = [s.strip() for s in space_ids]
    check.check(len(spaces) <= MAX_SPACES, "space_ids", f"at most {MAX_SPACES}")
    for i, space_id in enumerate(spaces[:MAX_SPACES]):
        problem = id_problem(space_id)
        check.check(problem is None, f"space_ids[{i}]", problem[1] if problem else "")
    description = description.strip()
    check.check(
        len(description) <= MAX_DESCRIPTION_LENGTH,
        "description",
        f"at most {MAX_DESCRIPTION_LENGTH} characters",
    )
    check.check(description.isprintable(), "description", "printable characters only")
    check.raise_if_any("the webhook cannot be registered")
    return Registration(
        url=url,
        event_types=tuple(sorted(set(types))) or ALL_TYPES,
        space_ids=tuple(dict.fromkeys(spaces)),
        description=description,
    )


def url_problems(url: str, policy: UrlPolicy) -> list[str]:
    """What is wrong with `url` as a webhook's endpoint (empty: nothing)."""
    if not url:
        return ["must not be empty"]
    if len(url) > MAX_URL_LENGTH:
        return [f"at most {MAX_URL_LENGTH} characters"]
    if not url.isprintable() or any(c.isspace() for c in url):
        return ["printable characters only, no spaces"]
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (it raises on a port that is not a number from 0 to 65535)
    except ValueError as e:
        return [f"is not a URL ({e})"]
    problems = []
    allowed = ("https", "http") if policy.allow_http else ("https",)
    if parts.scheme not in allowed:
        problems.append("must be https" if not policy.allow_http else "must be https or http")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        problems.append("must name a host")
    if parts.username is not None or parts.password is not None:
        problems.append("must not carry credentials (user:password@)")
    if parts.fragment:
        problems.append("must not have a fragment (#...)")
    if host and not policy.allow_private and local_host(host):
        problems.append("must not aim at a private, loopback or link-local address")
    return problems


def local_host(host: str) -> bool:
    """An address that is not public, or a name for this machine or its network (a single label
    such as `intranet` is resolved through the local search domains)."""
    host = host.lower().strip("[]").rstrip(".")
    if _is_address(host):
        return not public_address(host)
    return host in _LOCAL_NAMES or host.endswith(_LOCAL_SUFFIXES) or "." not in host


def public_address(address: str) -> bool:
    """Whether an IP address is a public unicast one (not private, loopback, link-local,
    multicast, reserved or unspecified; an IPv4-mapped IPv6 address is judged as its IPv4)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True
