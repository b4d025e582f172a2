"""JWT bearer tokens: minting for tools and tests, verifying for servers.

The user id comes only from a verified token's `sub`. A token must carry `exp`
and the configured audience. Which key verifies it is chosen by the `kid` in
its header from the verifier's KeySet (libs/auth/keys.py); a token without a
kid verifies with the current HS256 key only. The token's `alg` must be the
chosen key's one algorithm: `alg=none` and every other algorithm are refused,
so a forged header can neither downgrade the check nor use a public key as an
HMAC secret.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jwt

from libs.auth.keys import EDDSA, HS256, RS256, KeySet

ALGORITHM = HS256


class InvalidToken(Exception):
    """The token is missing, malformed, forged, expired, for another audience or signed with an unknown key."""


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
    key: Any,
    user_id: str,
    *,
    audience: str = "podium",
    ttl_seconds: int = 3600,
    roles: Iterable[str] = (),
    now: float | None = None,
    extra: dict | None = None,
    key_id: str | None = None,
    algorithm: str | None = None,
) -> str:
    """A token for `user_id`, signed with `key` and naming `key_id` (its `kid`) when given.

    `key` is an HS256 secret (str), or an Ed25519 or RSA private key (a
    `cryptography` key object or PEM bytes) for EdDSA or RS256; the algorithm
    follows from the key unless given.
    """
    issued = int(now if now is not None else time.time())
    claims = {"sub": user_id, "aud": audience, "iat": issued, "exp": issued + ttl_seconds}
    if roles:
        claims["roles"] = sorted(roles)
    claims.update(extra or {})
    headers = {"kid": key_id} if key_id else None
    return jwt.encode(claims, key, algorithm=algorithm or _algorithm_of(key), headers=headers)


def _algorithm_of(key: Any) -> str:
    if isinstance(key, str):
        return HS256
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    if isinstance(key, bytes):
        key = load_pem_private_key(key, password=None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return EDDSA
    if isinstance(key, rsa.RSAPrivateKey):
        return RS256
    raise TypeError("sign with an HS256 secret (str), an Ed25519 or an RSA private key")


class TokenVerifier:
    """Verifies tokens with a KeySet (or, for tests and tools, one HS256 secret)."""

    def __init__(self, keys: KeySet | str, audience: str, leeway_seconds: int = 10):
        self._keys = KeySet.single(keys) if isinstance(keys, str) else keys
        self._audience = audience
        self._leeway = leeway_seconds

    def verify(self, token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise InvalidToken(f"the bearer token is malformed: {e}") from e
        kid = header.get("kid")
        if kid is not None and (not isinstance(kid, str) or not kid):
            raise InvalidToken("the bearer token's 'kid' header must be a non-empty string")
        key = self._keys.for_kid(kid)
        if key is None:
            raise InvalidToken(
                f"the bearer token is signed with key {kid!r}, which is not accepted (rotated out?)"
            )
        named = f" (key {kid!r})" if kid else ""
        if header.get("alg") != key.algorithm:
            raise InvalidToken(f"the bearer token must be signed with {key.algorithm}{named}")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
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
            raise InvalidToken(f"the bearer token must be signed with {key.algorithm}{named}") from e
        except jwt.InvalidSignatureError as e:
            raise InvalidToken(f"the bearer token's signature does not verify{named}") from e
        except jwt.PyJWTError as e:
            raise InvalidToken(f"the bearer token is malformed: {e}") from e
        user_id = claims.get("sub")
        if not isinstance(user_id, str) or not user_id.strip():
            raise InvalidToken("the bearer token's 'sub' claim must be a non-empty user id")
        roles = claims.get("roles") or []
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise InvalidToken("the bearer token's 'roles' claim must be a list of strings")
        return Identity(user_id=user_id, roles=frozenset(roles), claims=claims)
