"""The keys bearer tokens may be signed with, by `kid`: what a verifier accepts.

    keys = KeySet.load(current_secret, current_kid="2026-12", previous="2026-11=old-secret",
                       jwks_file="/etc/podium/issuer-jwks.json")

- The current HS256 key, under its kid. A token that names no kid verifies with
  it alone, so tokens minted before kids existed keep working.
- Previous HS256 keys (`kid=secret,kid=secret`): still accepted while the
  tokens signed with them expire (key rotation). Only a token naming one of
  these kids verifies with it.
- Public keys from a JWKS file (EdDSA over Ed25519, or RS256), for an issuer
  that must not hold the services' HS256 secret.

Each key has exactly one algorithm. A kid that names a public key verifies only
as that key's algorithm, so an HS256 token can never use a public key as its
HMAC secret. A configuration that is ambiguous or unsafe (a kid twice, a
symmetric or private key in the JWKS file) is refused when the key set is built,
so a service fails at start-up, not on its first call.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

HS256 = "HS256"
EDDSA = "EdDSA"
RS256 = "RS256"

# JWK key type (and curve) -> the one algorithm such a key verifies.
_PUBLIC_ALGORITHMS = {("OKP", "Ed25519"): EDDSA, ("RSA", None): RS256}
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")


class KeyConfigurationError(ValueError):
    """The configured keys are malformed, ambiguous or unsafe."""


@dataclass(frozen=True)
class VerificationKey:
    kid: str
    algorithm: str
    key: Any  # the HS256 secret (str), or a `cryptography` public key

    def __repr__(self) -> str:  # never print a secret
        return f"VerificationKey(kid={self.kid!r}, algorithm={self.algorithm!r})"


class KeySet:
    """The keys a verifier accepts: one current HS256 key plus others, each by kid."""

    def __init__(self, current: VerificationKey, others: Iterable[VerificationKey] = ()):
        if current.algorithm != HS256:
            raise KeyConfigurationError("the current key must be an HS256 secret")
        self.current = current
        self._by_kid: dict[str, VerificationKey] = {current.kid: current}
        for key in others:
            if key.kid in self._by_kid:
                raise KeyConfigurationError(f"key id {key.kid!r} is configured twice")
            self._by_kid[key.kid] = key

    @classmethod
    def single(cls, secret: str, kid: str = "dev") -> KeySet:
        return cls(VerificationKey(kid, HS256, secret))

    @classmethod
    def load(
        cls, current_secret: str, *, current_kid: str, previous: str = "", jwks_file: str = ""
    ) -> KeySet:
        """The key set of a service's configuration (see PodiumSettings.jwt_*)."""
        if not current_kid:
            raise KeyConfigurationError("PODIUM_JWT_KEY_ID must not be empty")
        others = list(parse_previous_secrets(previous))
        if jwks_file:
            others.extend(read_jwks_file(jwks_file))
        return cls(VerificationKey(current_kid, HS256, current_secret), others)

    def for_kid(self, kid: str | None) -> VerificationKey | None:
        """The key a token naming `kid` must verify with; no kid means the current key."""
        if kid is None:
            return self.current
        return self._by_kid.get(kid)

    @property
    def kids(self) -> list[str]:
        return list(self._by_kid)


def parse_previous_secrets(text: str) -> Iterable[VerificationKey]:
    """`kid=secret,kid=secret` -> HS256 keys (a secret may contain `=`, not `,`)."""
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        kid, sep, secret = item.partition("=")
        if not sep or not kid.strip() or not secret:
            raise KeyConfigurationError(
                "PODIUM_JWT_PREVIOUS_SECRETS must be `kid=secret` pairs separated by commas"
            )
        yield VerificationKey(kid.strip(), HS256, secret)


def read_jwks_file(path: str) -> list[VerificationKey]:
    try:
        document = json.loads(Path(path).read_text())
    except OSError as e:
        raise KeyConfigurationError(f"cannot read the JWKS file {path}: {e.strerror}") from e
    except ValueError as e:
        raise KeyConfigurationError(f"the JWKS file {path} is not JSON: {e}") from e
    return public_keys(document, source=path)


def public_keys(document: Mapping, *, source: str = "JWKS") -> list[VerificationKey]:
    """The signing keys of a JWKS document (`{"keys": [...]}`), each with its one algorithm."""
    entries = document.get("keys") if isinstance(document, Mapping) else None
    if not isinstance(entries, list):
        raise KeyConfigurationError(f"{source}: a JWKS is an object with a `keys` list")
    keys = []
    for jwk in entries:
        if not isinstance(jwk, Mapping):
            raise KeyConfigurationError(f"{source}: every entry of `keys` must be an object")
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid:
            raise KeyConfigurationError(f"{source}: every key needs a `kid`")
        if any(member in jwk for member in _PRIVATE_MEMBERS):
            raise KeyConfigurationError(
                f"{source}: key {kid!r} holds private or symmetric key material; publish public keys only"
            )
        algorithm = _PUBLIC_ALGORITHMS.get((jwk.get("kty"), jwk.get("crv")))
        if algorithm is None:
            raise KeyConfigurationError(
                f"{source}: key {kid!r} must be an Ed25519 (kty OKP) or RSA public key"
            )
        if jwk.get("alg", algorithm) != algorithm:
            raise KeyConfigurationError(
                f"{source}: key {kid!r} is {jwk.get('kty')}, so its alg is {algorithm}"
            )
        if jwk.get("use", "sig") != "sig":
            raise KeyConfigurationError(f"{source}: key {kid!r} is not a signing key (`use` is not `sig`)")
        try:
            key = jwt.PyJWK(dict(jwk), algorithm=algorithm).key
        except jwt.PyJWTError as e:
            raise KeyConfigurationError(f"{source}: key {kid!r} is malformed: {e}") from e
        keys.append(VerificationKey(kid, algorithm, key))
    return keys


def jwk_of(public_key: Any, kid: str) -> dict:
    """A public key as a JWK with its kid and algorithm, for writing a JWKS file."""
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    if isinstance(public_key, ed25519.Ed25519PublicKey):
        jwk, algorithm = jwt.algorithms.OKPAlgorithm.to_jwk(public_key, as_dict=True), EDDSA
    elif isinstance(public_key, rsa.RSAPublicKey):
        jwk, algorithm = jwt.algorithms.RSAAlgorithm.to_jwk(public_key, as_dict=True), RS256
    else:
        raise TypeError("only Ed25519 and RSA public keys go in a JWKS")
    return {**jwk, "kid": kid, "alg": algorithm, "use": "sig"}
