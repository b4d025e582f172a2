"""ICE servers for real networks: the configured list, and TURN credentials in coturn's REST scheme."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from pydantic import ValidationError

from services.gateway.application.ice_servers import IceServerSource
from services.gateway.domain.ice import IceConfigurationError, parse_ice_servers, servers_for
from services.gateway.settings import GatewaySettings

SECRET = "coturn-static-auth-secret"
NOW = 1_800_000_000.4
LIST = '[{"urls": "stun:stun.example.org:3478"}, {"urls": ["turn:turn.example.org:3478?transport=udp"]}]'


def test_a_turn_entry_gets_a_username_of_expiry_and_user_and_an_hmac_sha1_credential():
    servers = parse_ice_servers(LIST, turn_secret=True)
    stun, turn = servers_for(servers, user_id="ana", now=NOW, turn_secret=SECRET, ttl_seconds=3600)

    assert stun.as_dict() == {"urls": ["stun:stun.example.org:3478"]}
    assert turn.username == f"{int(NOW) + 3600}:ana"
    # What coturn computes from the username and its static-auth-secret, independently of the code.
    expected = base64.b64encode(hmac.digest(SECRET.encode(), turn.username.encode(), "sha1")).decode()
    assert turn.credential == expected
    assert len(base64.b64decode(turn.credential)) == hashlib.sha1().digest_size
    assert turn.as_dict() == {
        "urls": ["turn:turn.example.org:3478?transport=udp"],
        "username": turn.username,
        "credential": expected,
    }


def test_credentials_expire_ttl_after_they_are_minted_and_differ_per_user():
    clock = [NOW]
    source = IceServerSource(parse_ice_servers(LIST, turn_secret=True), SECRET, 600, clock=lambda: clock[0])
    first = source.for_user("ana")[1]
    clock[0] += 60
    later = source.for_user("ana")[1]
    ben = source.for_user("ben")[1]

    assert int(first.username.split(":")[0]) == int(NOW) + 600
    assert int(later.username.split(":")[0]) == int(NOW) + 660
    assert later.credential != first.credential
    assert ben.username.endswith(":ben") and ben.credential != later.credential


def test_a_turn_entry_with_its_own_credentials_keeps_them():
    servers = parse_ice_servers(
        '[{"urls": "turns:turn.example.org:5349", "username": "u", "credential": "c"}]', turn_secret=True
    )
    (turn,) = servers_for(servers, user_id="ana", now=NOW, turn_secret=SECRET, ttl_seconds=60)
    assert (turn.username, turn.credential) == ("u", "c")


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("[{urls: stun:x}]", "not JSON"),
        ('{"urls": "stun:x"}', "expected a JSON list"),
        ('["stun:x"]', "entry 0 is not an object"),
        ('[{"urls": []}]', "non-empty list of URLs"),
        ('[{"urls": "http://x"}]', "is not a stun:, stuns:, turn: or turns: URL"),
        ('[{"urls": "stun:x", "password": "p"}]', "unknown keys"),
        ('[{"urls": "turn:x"}]', "PODIUM_GATEWAY_TURN_SECRET"),
    ],
)
def test_a_malformed_list_is_refused_at_start_naming_the_setting(monkeypatch, value, says):
    monkeypatch.setenv("PODIUM_GATEWAY_ICE_SERVERS", value)
    with pytest.raises(ValidationError) as refused:
        GatewaySettings()
    assert "PODIUM_GATEWAY_ICE_SERVERS" in str(refused.value)
    assert says in str(refused.value)
    with pytest.raises(IceConfigurationError):
        parse_ice_servers(value, turn_secret=False)


def test_the_settings_give_turn_entries_credentials_when_the_secret_is_set(monkeypatch):
    monkeypatch.setenv("PODIUM_GATEWAY_ICE_SERVERS", '[{"urls": "turn:turn.example.org:3478"}]')
    monkeypatch.setenv("PODIUM_GATEWAY_TURN_SECRET", SECRET)
    monkeypatch.setenv("PODIUM_GATEWAY_TURN_CREDENTIAL_TTL_SECONDS", "120")
    settings = GatewaySettings()
    source = IceServerSource(
        settings.ice_servers(),
        settings.gateway_turn_secret.get_secret_value(),
        settings.gateway_turn_credential_ttl_seconds,
        clock=lambda: NOW,
    )
    (turn,) = source.for_user("ana")
    assert turn.username == f"{int(NOW) + 120}:ana"


def test_no_servers_configured_means_an_empty_list():
    assert GatewaySettings().ice_servers() == ()
