"""Which keys a verifier accepts, by kid: rotation of HS256 secrets and public keys from a JWKS."""

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from libs.auth.keys import KeyConfigurationError, KeySet, jwk_of, parse_previous_secrets, public_keys
from libs.auth.tokens import InvalidToken, TokenVerifier, mint_token

CURRENT = "current-secret-that-is-long-enough-for-hs256"
PREVIOUS = "previous-secret-that-is-long-enough-for-hs256"
RETIRED = "retired-secret-that-is-long-enough-for-hs256"
ED_KEY = ed25519.Ed25519PrivateKey.generate()
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
JWKS = {"keys": [jwk_of(ED_KEY.public_key(), "issuer-ed"), jwk_of(RSA_KEY.public_key(), "issuer-rsa")]}


def keys(previous: str = f"2026-11={PREVIOUS}", jwks: dict = JWKS) -> KeySet:
    return KeySet(
        KeySet.single(CURRENT, "2026-12").current, [*parse_previous_secrets(previous), *public_keys(jwks)]
    )


def verify(token: str, key_set: KeySet | None = None):
    return TokenVerifier(key_set or keys(), "podium", leeway_seconds=0).verify(token)


def _b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_the_current_and_the_previous_key_are_both_accepted_during_a_rotation():
    assert verify(mint_token(CURRENT, "alice", key_id="2026-12")).user_id == "alice"
    assert verify(mint_token(PREVIOUS, "bob", key_id="2026-11")).user_id == "bob"


def test_a_token_without_kid_verifies_with_the_current_key_only():
    assert verify(mint_token(CURRENT, "alice")).user_id == "alice"
    with pytest.raises(InvalidToken, match="signature does not verify"):
        verify(mint_token(PREVIOUS, "bob"))


def test_a_key_removed_from_the_set_is_refused_as_rotated_out():
    token = mint_token(PREVIOUS, "bob", key_id="2026-11")
    with pytest.raises(
        InvalidToken, match=r"signed with key '2026-11', which is not accepted \(rotated out\?\)"
    ):
        verify(token, keys(previous=""))


def test_an_unknown_kid_is_refused():
    with pytest.raises(InvalidToken, match="signed with key 'nobody-knows', which is not accepted"):
        verify(mint_token(RETIRED, "eve", key_id="nobody-knows"))


def test_a_token_verifies_only_with_the_key_its_kid_names():
    with pytest.raises(InvalidToken, match="signature does not verify"):
        verify(mint_token(CURRENT, "eve", key_id="2026-11"))


def test_eddsa_and_rs256_tokens_verify_with_their_jwks_keys():
    assert verify(mint_token(ED_KEY, "carol", key_id="issuer-ed")).user_id == "carol"
    assert verify(mint_token(RSA_KEY, "dave", key_id="issuer-rsa", roles=["gateway"])).is_gateway


def test_a_jwks_key_accepts_only_its_own_algorithm():
    with pytest.raises(InvalidToken, match="must be signed with EdDSA"):
        verify(mint_token(RSA_KEY, "eve", key_id="issuer-ed"))
    with pytest.raises(InvalidToken, match="must be signed with RS256"):
        verify(mint_token(RSA_KEY, "eve", key_id="issuer-rsa", algorithm="RS512"))


def test_an_hs256_token_naming_a_jwks_key_is_refused():
    with pytest.raises(InvalidToken, match="must be signed with EdDSA"):
        verify(mint_token(CURRENT, "eve", key_id="issuer-ed"))


def test_a_public_key_used_as_an_hmac_secret_is_refused():
    # The classic confusion: HMAC over the token with the issuer's *public* key as the secret.
    public_pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64({"alg": "HS256", "typ": "JWT", "kid": "issuer-rsa"})
    payload = _b64({"sub": "eve", "aud": "podium", "exp": int(time.time()) + 600})
    signature = _b64(hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    with pytest.raises(InvalidToken, match="must be signed with RS256"):
        verify(f"{header}.{payload}.{signature}")


def test_alg_none_is_refused_whatever_the_kid():
    for kid in (None, "2026-12", "issuer-ed"):
        headers = {"kid": kid} if kid else None
        token = jwt.encode(
            {"sub": "eve", "aud": "podium", "exp": 2**40}, "", algorithm="none", headers=headers
        )
        with pytest.raises(InvalidToken, match="must be signed with"):
            verify(token)


def test_an_expired_token_of_a_known_kid_is_refused_as_expired():
    with pytest.raises(InvalidToken, match="expired"):
        verify(mint_token(PREVIOUS, "bob", key_id="2026-11", now=time.time() - 7200))
    with pytest.raises(InvalidToken, match="expired"):
        verify(mint_token(ED_KEY, "carol", key_id="issuer-ed", now=time.time() - 7200))


def test_a_kid_that_is_not_a_non_empty_string_is_refused():
    payload = _b64({"sub": "eve", "aud": "podium", "exp": 2**40})
    for kid in (7, ""):
        header = _b64({"alg": "HS256", "kid": kid})
        signature = _b64(hmac.new(CURRENT.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest())
        with pytest.raises(InvalidToken, match=r"kid|Key ID"):
            verify(f"{header}.{payload}.{signature}")


@pytest.mark.parametrize(
    ("previous", "jwks", "message"),
    [
        ("2026-12=" + PREVIOUS, {"keys": []}, "configured twice"),
        ("no-equals-sign", {"keys": []}, "kid=secret"),
        ("", {"keys": [{"kty": "oct", "kid": "k", "k": "c2VjcmV0"}]}, "private or symmetric"),
        ("", {"keys": [{**jwk_of(ED_KEY.public_key(), "x"), "d": "AAAA"}]}, "private or symmetric"),
        ("", {"keys": [{**jwk_of(ED_KEY.public_key(), "x"), "alg": "RS256"}]}, "alg is EdDSA"),
        ("", {"keys": [{k: v for k, v in jwk_of(ED_KEY.public_key(), "x").items() if k != "kid"}]}, "kid"),
        ("", {"keys": [{**jwk_of(ED_KEY.public_key(), "x"), "use": "enc"}]}, "not a signing key"),
        ("", {"nokeys": 1}, "`keys` list"),
    ],
    ids=[
        "duplicate-kid",
        "bad-pairs",
        "symmetric-jwk",
        "private-jwk",
        "wrong-alg",
        "no-kid",
        "enc-key",
        "no-keys",
    ],
)
def test_an_ambiguous_or_unsafe_key_configuration_is_refused(previous, jwks, message):
    with pytest.raises(KeyConfigurationError, match=message):
        keys(previous=previous, jwks=jwks)


def test_a_key_set_loads_from_configuration(tmp_path):
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(JWKS))
    key_set = KeySet.load(CURRENT, current_kid="2026-12", previous=f"2026-11={PREVIOUS}", jwks_file=str(path))
    assert key_set.kids == ["2026-12", "2026-11", "issuer-ed", "issuer-rsa"]
    assert verify(mint_token(ED_KEY, "carol", key_id="issuer-ed"), key_set).user_id == "carol"
    with pytest.raises(KeyConfigurationError, match="cannot read"):
        KeySet.load(CURRENT, current_kid="k", jwks_file=str(tmp_path / "missing.json"))
