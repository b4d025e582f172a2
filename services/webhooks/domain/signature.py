"""How a delivery is signed: HMAC-SHA256 over `{timestamp}.{body}` with the webhook's secret.

    Podium-Signature: t=1733140800,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd

`t` is the Unix time of the attempt (each retry is signed afresh), so a
receiver can refuse a request whose timestamp is too old (a replay) and still
accept a late retry; `v1` is the lower-case hex HMAC. The key is the secret
string as returned by RegisterWebhook, as UTF-8 bytes. Verifying takes the raw
body as received, not a re-serialised copy (docs/webhooks.md has a verifier).
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "Podium-Signature"
SCHEME = "v1"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `{timestamp}.{body}` under `secret`."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},{SCHEME}={signature(secret, timestamp, body)}"
