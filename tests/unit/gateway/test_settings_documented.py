"""Every setting of the gateway's own is in the README's settings table, new ones included."""

from __future__ import annotations

from pathlib import Path

from services.gateway.settings import GatewaySettings

README = Path(__file__).resolve().parents[3] / "README.md"


def test_every_gateway_setting_is_in_the_readme():
    text = README.read_text()
    own = [name for name in GatewaySettings.model_fields if name.startswith("gateway_")]
    missing = [
        variable
        for variable in (f"PODIUM_{name.upper()}" for name in own)
        # A row may list siblings after the first as `_SUFFIX` (the peer addresses do).
        if f"`{variable}`" not in text and f"`_{variable.removeprefix('PODIUM_GATEWAY_')}`" not in text
    ]
    assert own and not missing, f"add these to the README's settings table: {missing}"
