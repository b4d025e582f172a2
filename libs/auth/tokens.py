"""JWT bearer tokens (HS256): minting for tools and tests, verifying for servers.

The user id comes only from a verified token's `sub`. A token must carry `exp`
and the configured audience; `alg=none` and every algorithm other than HS256 are
rejected, so a forged header cannot downgrade the check.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"


class InvalidToken(Exception):
    """The token is missing, malformed, forged, expired or for another audience."""


GATEWAY_ROLE = "gateway"


@dataclass(frozen=True)
class Identity:
    """A verified caller: a user, or a client gateway (`sub` = gateway id, role `gateway`)."""

    user_id: str
    roles: frozenset[str]
    claims: dict

    @property
    def is_gateway(self) -> bool:
        return GATEWAY_ROLE in self.roles


def mint_token(
    secret: str,
    user_id: str,
    *,
    audience: str = "podium",
    ttl_seconds: int = 3600,
    roles: Iterable[str] = (),
    now: float | None = None,
    extra: dict | None = None,
) -> str:
    issued = int(now if now is not None else time.time())
    claims = {"sub": user_id, "aud": audience, "iat": issued, "exp": issued + ttl_seconds}
    if roles:
        claims["roles"] = sorted(roles)
    claims.update(extra or {})
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


class TokenVerifier:
    def __init__(self, secret: str, audience: str, leeway_seconds: int = 10):
        self._secret = secret
        self._audience = audience
        self._leeway = leeway_seconds

    def verify(self, token: str) -> Identity:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self._audience,
                leeway=self._leeway,
                options={"require": ["exp", "sub", "aud"]},
            )
        except jwt.ExpiredSignatureError as e:
            raise InvalidToken("the bearer token has expired; obtain a new one") from e
        except jwt.ImmatureSignatureError as e:
            raise InvalidToken("the bearer token is not valid yet (its nbf or iat is in the future)") from e
        except jwt.InvalidAudienceError as e:
            raise InvalidToken(f"the bearer token is not for audience {self._audience!r}") from e
        except jwt.MissingRequiredClaimError as e:
            raise InvalidToken(f"the bearer token lacks the required claim {e.claim!r}") from e
        except jwt.InvalidAlgorithmError as e:
            raise InvalidToken(f"the bearer token must be signed with {ALGORITHM}") from e
        except jwt.InvalidSignatureError as e:
            raise InvalidToken("the bearer token's signature does not verify") from e
        except jwt.PyJWTError as e:
            raise InvalidToken(f"the bearer token is malformed: {e}") from e
        user_id = claims.get("sub")
        if not isinstance(user_id, str) or not user_id.strip():
            raise InvalidToken("the bearer token's 'sub' claim must be a non-empty user id")
        roles = claims.get("roles") or []
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise InvalidToken("the bearer token's 'roles' claim must be a list of strings")
        return Identity(user_id=user_id, roles=frozenset(roles), claims=claims)
