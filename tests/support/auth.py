"""Bearer tokens for tests, signed with the key the services under test use."""

from __future__ import annotations

from collections.abc import Iterable

from libs.auth.tokens import mint_token
from libs.config.settings import DEV_JWT_SECRET


def token(
    user_id: str, roles: Iterable[str] = (), *, ttl_seconds: int = 3600, secret: str = DEV_JWT_SECRET
) -> str:
    """A valid development JWT for `user_id` (the services under test run with the default secret)."""
    return mint_token(secret, user_id, ttl_seconds=ttl_seconds, roles=roles)


def bearer(user_id: str, roles: Iterable[str] = ()) -> tuple[tuple[str, str], ...]:
    """gRPC call metadata carrying a token for `user_id`."""
    return (("authorization", f"Bearer {token(user_id, roles)}"),)
