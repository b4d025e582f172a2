"""The signature verifier docs/webhooks.md gives gateway developers, run from the page itself,
so the page cannot drift from what Podium sends."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


def documented_verifier():
    """The `verify(secret, signature_header, body, tolerance_seconds=300)` of docs/webhooks.md."""
    text = DOC.read_text()
    block = re.search(
        r"<!-- verifier:begin[^>]*-->\s*```python\n(.*?)```\s*<!-- verifier:end -->", text, re.S
    )
    assert block, "docs/webhooks.md has lost its verifier block"
    namespace: dict = {}
    exec(compile(block.group(1), str(DOC), "exec"), namespace)
    return namespace["verify"]
