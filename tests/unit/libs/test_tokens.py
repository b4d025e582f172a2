import time

import jwt
import pytest

from libs.auth.tokens import InvalidToken, TokenVerifier, mint_token

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def verifier() -> TokenVerifier:
    return TokenVerifier(SECRET, "podium", leeway_seconds=0)


def test_a_valid_token_gives_its_subject_and_roles():
    identity = verifier().verify(mint_token(SECRET, "alice", roles=["trust-and-safety"]))
    assert identity.user_id == "alice"
    assert identity.roles == frozenset({"trust-and-safety"})


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (mint_token(SECRET, "alice", now=time.time() - 7200), "expired"),
        (mint_token("another-key-that-is-also-long-enough-for-hs256", "alice"), "signature"),
        (mint_token(SECRET, "alice", audience="elsewhere"), "audience"),
        (jwt.encode({"sub": "alice", "aud": "podium"}, SECRET, algorithm="HS256"), "'exp'"),
        (jwt.encode({"sub": "alice", "aud": "podium", "exp": 2**40}, "", algorithm="none"), "HS256"),
        (jwt.encode({"sub": "", "aud": "podium", "exp": 2**40}, SECRET, algorithm="HS256"), "sub"),
        ("not.a.jwt", "malformed"),
    ],
    ids=["expired", "forged", "wrong-audience", "no-exp", "alg-none", "empty-sub", "garbage"],
)
def test_bad_tokens_are_rejected_with_a_reason(token, message):
    with pytest.raises(InvalidToken, match=message):
        verifier().verify(token)
