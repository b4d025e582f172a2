"""Bearer tokens for tests, signed with the key the services under test use."""

from __future__ import annotations

from collections.abc import Iterable

from libs.auth.tokens import GATEWAY_ROLE, mint_token
from libs.config.settings import DEV_JWT_SECRET


def token(
    user_id: str, roles: Iterable[str] = (), *, ttl_seconds: int = 3600, secret: str = DEV_JWT_SECRET
) -> str:
    """A valid development JWT for `user_id` (the services under test run with the default secret)."""
    return mint_token(secret, user_id, ttl_seconds=ttl_seconds, roles=roles)


def bearer(user_id: str, roles: Iterable[str] = ()) -> tuple[tuple[str, str], ...]:
    """gRPC call metadata carrying a token for `user_id`."""
    return (("authorization", f"Bearer {token(user_id, roles)}"),)


def gateway_token(gateway_id: str, *, ttl_seconds: int = 3600, secret: str = DEV_JWT_SECRET) -> str:
    """A valid development JWT for the client gateway `gateway_id` (`sub`), with the `gateway` role."""
    return mint_token(secret, gateway_id, ttl_seconds=ttl_seconds, roles=[GATEWAY_ROLE])


def gateway_bearer(gateway_id: str) -> tuple[tuple[str, str], ...]:
    """gRPC call metadata carrying a gateway token for `gateway_id`."""
    return (("authorization", f"Bearer {gateway_token(gateway_id)}"),)
