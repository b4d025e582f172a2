"""The signature: HMAC-SHA256 of `{t}.{body}`, as docs/webhooks.md says, and as its verifier checks."""

from __future__ import annotations

import time

from services.webhooks.domain.delivery_request import delivery_request
from services.webhooks.domain.signature import signature, signature_header
from tests.support.webhook_verifier import documented_verifier

BODY = b'{"id":"e1"}'


def test_the_signature_is_the_hex_hmac_sha256_of_the_timestamp_a_dot_and_the_body():
    # Computed apart from this code: printf '1700000000.{"id":"e1"}' | openssl dgst -sha256 -hmac whsec_test
    expected = "6a85cb117c993612a34c72b4cfb5a16baed25a80d26e298ce0e6671320fd07c8"
    assert signature("whsec_test", 1700000000, BODY) == expected
    assert signature_header("whsec_test", 1700000000, BODY) == f"t=1700000000,v1={expected}"


def test_the_documented_verifier_accepts_a_fresh_signature_and_nothing_else():
    verify = documented_verifier()
    now = int(time.time())
    header = signature_header("whsec_k", now, BODY)
    assert verify("whsec_k", header, BODY)
    assert not verify("whsec_other", header, BODY)
    assert not verify("whsec_k", header, BODY + b" ")
    assert not verify("whsec_k", header.replace(f"t={now}", f"t={now + 1}"), BODY)
    assert not verify("whsec_k", signature_header("whsec_k", now - 301, BODY), BODY)  # a replay, too old
    assert verify("whsec_k", f"t={now},v1={'0' * 64},v1={signature('whsec_k', now, BODY)}", BODY)
    assert not verify("whsec_k", "garbage", BODY)
    assert not verify("whsec_k", f"v1={signature('whsec_k', now, BODY)}", BODY)  # no timestamp


def test_a_request_carries_the_event_id_as_its_idempotency_key_and_signs_the_body_as_sent():
    request = delivery_request(
        url="https://gw.example/hook",
        secret="whsec_k",
        webhook_id="w1",
        event_id="e1",
        event_type="space.started",
        attempt=3,
        body=BODY.decode(),
        timestamp=1700000000,
    )
    assert request.body == BODY
    assert request.headers["Idempotency-Key"] == request.headers["Podium-Event-Id"] == "e1"
    assert request.headers["Podium-Event-Type"] == "space.started"
    assert request.headers["Podium-Webhook-Id"] == "w1"
    assert request.headers["Podium-Delivery-Attempt"] == "3"
    assert request.headers["Podium-Signature"] == signature_header("whsec_k", 1700000000, BODY)
    assert request.headers["Content-Type"] == "application/json"
