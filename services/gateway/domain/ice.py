"""ICE servers for a peer connection: the configured STUN and TURN entries, with time-limited TURN
credentials in coturn's REST-API scheme (its `use-auth-secret`/`static-auth-secret`).

    username   = "<expiry, unix seconds>:<user id>"
    credential = base64(HMAC-SHA1(secret, username))

coturn recomputes the credential from the username and its shared secret and refuses it after the
expiry, so the gateway hands out TURN access without storing a password per user, and a leaked
credential stops working on its own. Pure: no clock, no I/O; the caller passes the time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

ICE_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")
TURN_SCHEMES = ("turn:", "turns:")


class IceConfigurationError(ValueError):
    """The configured ICE servers are not a JSON list of RTCIceServer-like objects."""


@dataclass(frozen=True)
class IceServer:
    urls: tuple[str, ...]
    username: str = ""
    credential: str = ""

    @property
    def is_turn(self) -> bool:
        return any(url.startswith(TURN_SCHEMES) for url in self.urls)

    def as_dict(self) -> dict:
        """As the browser's RTCIceServer takes it."""
        entry: dict = {"urls": list(self.urls)}
        if self.username or self.credential:
            entry |= {"username": self.username, "credential": self.credential}
        return entry


def parse_ice_servers(text: str, *, turn_secret: bool) -> tuple[IceServer, ...]:
    """The entries of a JSON list such as `[{"urls": "stun:stun.example.org:3478"},
    {"urls": ["turn:turn.example.org:3478?transport=udp"]}]`.

    A TURN entry needs its own `username` and `credential`, unless a TURN secret is set
    (`turn_secret`), in which case each user gets REST credentials for it.
    """
    try:
        raw = json.loads(text or "[]")
    except json.JSONDecodeError as e:
        raise IceConfigurationError(
            f'not JSON ({e}); expected a list like [{{"urls": "stun:host:3478"}}]'
        ) from e
    if not isinstance(raw, list):
        raise IceConfigurationError(
            f'expected a JSON list of {{"urls": ...}} objects, got {type(raw).__name__}'
        )
    servers = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise IceConfigurationError(f'entry {i} is not an object with "urls"')
        unknown = set(entry) - {"urls", "username", "credential"}
        if unknown:
            raise IceConfigurationError(f"entry {i} has unknown keys {sorted(unknown)}")
        urls = entry.get("urls")
        urls = [urls] if isinstance(urls, str) else urls
        if not urls or not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise IceConfigurationError(f'entry {i}: "urls" must be a URL or a non-empty list of URLs')
        for url in urls:
            if not url.startswith(ICE_SCHEMES):
                raise IceConfigurationError(f"entry {i}: {url!r} is not a stun:, stuns:, turn: or turns: URL")
        username, credential = entry.get("username", ""), entry.get("credential", "")
        if not isinstance(username, str) or not isinstance(credential, str):
            raise IceConfigurationError(f'entry {i}: "username" and "credential" must be strings')
        server = IceServer(tuple(urls), username, credential)
        if server.is_turn and not (username and credential) and not turn_secret:
            raise IceConfigurationError(
                f'entry {i} is a TURN server without "username" and "credential": give it both, or set '
                "PODIUM_GATEWAY_TURN_SECRET so each user gets time-limited credentials"
            )
        servers.append(server)
    return tuple(servers)


def turn_credentials(secret: str, user_id: str, expires_at: int) -> tuple[str, str]:
    """coturn's REST-API credentials for `user_id`, valid until `expires_at` (unix seconds)."""
    username = f"{expires_at}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def servers_for(
    servers: tuple[IceServer, ...], *, user_id: str, now: float, turn_secret: str, ttl_seconds: int
) -> list[IceServer]:
    """What one user's peer connection uses: TURN entries without credentials of their own get
    credentials for this user that expire `ttl_seconds` from `now`."""
    expires_at = int(now) + ttl_seconds
    out = []
    for server in servers:
        if server.is_turn and not (server.username and server.credential) and turn_secret:
            username, credential = turn_credentials(turn_secret, user_id, expires_at)
            server = IceServer(server.urls, username, credential)
        out.append(server)
    return out
