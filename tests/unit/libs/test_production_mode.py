"""Production mode refuses every development default, one line per setting, naming its variable."""

from __future__ import annotations

import logging
import os

import pytest

from libs.config.production import EX_CONFIG, refuse_unsafe_production
from libs.config.settings import DEV_JWT_SECRET, PodiumSettings
from services.analytics.settings import AnalyticsSettings
from services.media_relay.settings import MediaRelaySettings
from services.moderation.settings import ModerationSettings
from services.presence.settings import PresenceSettings
from services.replay.settings import ReplaySettings
from services.room.settings import RoomSettings
from services.webhooks.settings import WebhooksSettings

SERVICE_SETTINGS = (
    RoomSettings,
    PresenceSettings,
    ModerationSettings,
    MediaRelaySettings,
    ReplaySettings,
    AnalyticsSettings,
    WebhooksSettings,
)
SECRET = "a-production-secret-of-forty-eight-bytes-0123456"

# Everything production mode asks for, as an operator would set it.
SAFE = {
    "env": "production",
    "jwt_secret": SECRET,
    "jwt_key_id": "2026-12",
    "jwt_previous_secrets": "2026-11=an-older-production-secret-also-long-enough",
    "grpc_tls_cert_file": "/etc/podium/grpc-tls/tls.crt",
    "grpc_tls_key_file": "/etc/podium/grpc-tls/tls.key",
    "grpc_tls_client_ca_file": "/etc/podium/grpc-tls/ca.crt",
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_username": "podium-room",
    "kafka_sasl_password": "a-scram-password",
    "kafka_ssl_ca_file": "/etc/podium/kafka-ca/ca.crt",
    "kafka_bootstrap_servers": "podium-kafka-bootstrap:9093",
    "topic_replication_factor": 3,
    "database_url": "postgresql://podium:secret@podium-db-rw:5432/podium",
}
SAFE_OF = {
    RoomSettings: {
        "room_invite_link_base_url": "https://spaces.podium.chat/i/",
        "room_media_relays": "media-relay-0=media-relay-0.media-relay-headless.podium.svc.cluster.local:50054",
    },
    PresenceSettings: {"presence_advertised_host": "presence-7c9d.presence-peers.podium.svc.cluster.local"},
    ReplaySettings: {"replay_blob_dir": "/var/lib/podium/recordings"},
    WebhooksSettings: {"webhooks_allow_http": False, "webhooks_allow_private_addresses": False},
}


@pytest.fixture(autouse=True)
def no_podium_environment(monkeypatch):
    """Only what a test passes counts: not the variables of the shell that runs the tests."""
    for name in list(os.environ):
        if name.startswith("PODIUM_") or name in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"):
            monkeypatch.delenv(name)


def safe(cls, **overrides):
    return cls(**{**SAFE, **SAFE_OF.get(cls, {}), **overrides})


@pytest.mark.parametrize("cls", SERVICE_SETTINGS, ids=lambda c: c.__name__)
def test_a_fully_configured_production_service_has_no_problem(cls):
    assert safe(cls).production_problems() == []


# (settings class, field, unsafe value, the variable its one problem names, words the problem says)
UNSAFE = [
    (PodiumSettings, "jwt_secret", DEV_JWT_SECRET, "PODIUM_JWT_SECRET", "is the development key"),
    (PodiumSettings, "jwt_secret", "short-but-not-the-dev-one", "PODIUM_JWT_SECRET", "25 bytes"),
    (PodiumSettings, "jwt_secret", "", "PODIUM_JWT_SECRET", "0 bytes"),
    (
        PodiumSettings,
        "jwt_previous_secrets",
        f"old={DEV_JWT_SECRET}",
        "PODIUM_JWT_PREVIOUS_SECRETS",
        "kid 'old' is the development key",
    ),
    (
        PodiumSettings,
        "jwt_previous_secrets",
        "old=tiny",
        "PODIUM_JWT_PREVIOUS_SECRETS",
        "kid 'old' is 4 bytes",
    ),
    (PodiumSettings, "grpc_tls_cert_file", "", "PODIUM_GRPC_TLS_CERT_FILE", "plaintext"),
    (PodiumSettings, "grpc_tls_key_file", "", "PODIUM_GRPC_TLS_KEY_FILE", "plaintext"),
    (PodiumSettings, "kafka_security_protocol", "PLAINTEXT", "PODIUM_KAFKA_SECURITY_PROTOCOL", "unencrypted"),
    (
        PodiumSettings,
        "kafka_security_protocol",
        "SASL_PLAINTEXT",
        "PODIUM_KAFKA_SECURITY_PROTOCOL",
        "unencrypted",
    ),
    (PodiumSettings, "kafka_bootstrap_servers", "127.0.0.1:9092", "KAFKA_BOOTSTRAP_SERVERS", "this machine"),
    (
        PodiumSettings,
        "kafka_bootstrap_servers",
        "kafka-0:9093,localhost:9093",
        "KAFKA_BOOTSTRAP_SERVERS",
        "localhost",
    ),
    (PodiumSettings, "topic_replication_factor", 1, "PODIUM_TOPIC_REPLICATION_FACTOR", "one broker"),
    (
        PodiumSettings,
        "database_url",
        "postgresql://postgres@127.0.0.1:5432/postgres",
        "DATABASE_URL",
        "development default",
    ),
    (
        RoomSettings,
        "room_invite_link_base_url",
        "https://podium.example/i/",
        "PODIUM_ROOM_INVITE_LINK_BASE_URL",
        "placeholder",
    ),
    (
        RoomSettings,
        "room_invite_link_base_url",
        "https://invites.example.com/i/",
        "PODIUM_ROOM_INVITE_LINK_BASE_URL",
        "placeholder",
    ),
    (
        RoomSettings,
        "room_invite_link_base_url",
        "http://spaces.podium.chat/i/",
        "PODIUM_ROOM_INVITE_LINK_BASE_URL",
        "not https",
    ),
    (
        RoomSettings,
        "room_media_relays",
        "relay-0=127.0.0.1:50054",
        "PODIUM_ROOM_MEDIA_RELAYS",
        "127.0.0.1:50054",
    ),
    (
        RoomSettings,
        "room_media_relays",
        "relay-0=relay-0.relays.podium.svc.cluster.local:50054,relay-1=[::1]:50054",
        "PODIUM_ROOM_MEDIA_RELAYS",
        "[::1]:50054",
    ),
    (
        RoomSettings,
        "room_media_relays",
        "relay-0=media-relay-0.media-relay-headless:50054,relay-1=relay-1.relays.podium.svc:50054",
        "PODIUM_ROOM_MEDIA_RELAYS",
        "media-relay-0.media-relay-headless:50054, relay-1.relays.podium.svc:50054, which resolve only inside",
    ),
    (
        PresenceSettings,
        "presence_advertised_host",
        "127.0.0.1",
        "PODIUM_PRESENCE_ADVERTISED_HOST",
        "cannot reach",
    ),
    (
        PresenceSettings,
        "presence_advertised_host",
        "0.0.0.0",
        "PODIUM_PRESENCE_ADVERTISED_HOST",
        "cannot reach",
    ),
    (
        PresenceSettings,
        "presence_advertised_host",
        "localhost",
        "PODIUM_PRESENCE_ADVERTISED_HOST",
        "cannot reach",
    ),
    (ReplaySettings, "replay_blob_dir", ".podium/replays", "PODIUM_REPLAY_BLOB_DIR", "relative"),
    (WebhooksSettings, "webhooks_allow_http", True, "PODIUM_WEBHOOKS_ALLOW_HTTP", "unencrypted"),
    (
        WebhooksSettings,
        "webhooks_allow_private_addresses",
        True,
        "PODIUM_WEBHOOKS_ALLOW_PRIVATE_ADDRESSES",
        "internal network",
    ),
]


@pytest.mark.parametrize(
    ("cls", "field", "value", "variable", "says"),
    UNSAFE,
    ids=[f"{field}={value!s:.30}" for _, field, value, _, _ in UNSAFE],
)
def test_each_unsafe_setting_is_one_problem_naming_its_variable(cls, field, value, variable, says):
    # Every service that has the setting refuses it; the base rules hold for all seven.
    for service in SERVICE_SETTINGS if cls is PodiumSettings else (cls,):
        if field == "database_url" and not service.uses_database:
            continue
        problems = safe(service, **{field: value}).production_problems()
        assert len(problems) == 1, (service.__name__, problems)
        assert problems[0].startswith(f"{variable} "), problems
        assert says in problems[0], problems


def test_services_without_a_database_do_not_ask_for_one():
    default_url = PodiumSettings.model_fields["database_url"].default
    assert safe(AnalyticsSettings, database_url=default_url).production_problems() == []


def test_presence_keeps_its_board_in_postgresql_and_asks_for_a_database():
    default_url = PodiumSettings.model_fields["database_url"].default
    problems = safe(PresenceSettings, database_url=default_url).production_problems()
    assert [p.split(" ", 1)[0] for p in problems] == ["DATABASE_URL"], problems


def test_a_secret_is_never_quoted():
    problems = safe(
        RoomSettings, jwt_secret="tiny", jwt_previous_secrets="old=also-tiny"
    ).production_problems()
    assert problems and not any("tiny" in p for p in problems), problems


@pytest.mark.parametrize("cls", SERVICE_SETTINGS, ids=lambda c: c.__name__)
def test_every_development_default_is_refused(cls):
    problems = cls(env="production").production_problems()
    named = {p.split(" ", 1)[0] for p in problems}
    expected = {
        "PODIUM_JWT_SECRET",
        "PODIUM_GRPC_TLS_CERT_FILE",
        "PODIUM_GRPC_TLS_KEY_FILE",
        "PODIUM_KAFKA_SECURITY_PROTOCOL",
        "KAFKA_BOOTSTRAP_SERVERS",
        "PODIUM_TOPIC_REPLICATION_FACTOR",
    }
    expected |= {"DATABASE_URL"} if cls.uses_database else set()
    expected |= {
        RoomSettings: {"PODIUM_ROOM_INVITE_LINK_BASE_URL", "PODIUM_ROOM_MEDIA_RELAYS"},
        PresenceSettings: {"PODIUM_PRESENCE_ADVERTISED_HOST"},
        ReplaySettings: {"PODIUM_REPLAY_BLOB_DIR"},
        WebhooksSettings: {"PODIUM_WEBHOOKS_ALLOW_HTTP", "PODIUM_WEBHOOKS_ALLOW_PRIVATE_ADDRESSES"},
    }.get(cls, set())
    assert named == expected
    assert len(problems) == len(named)  # one line per setting


def test_production_mode_logs_each_problem_and_exits_with_ex_config(caplog):
    settings = safe(RoomSettings, jwt_secret=DEV_JWT_SECRET, grpc_tls_cert_file="")
    with caplog.at_level(logging.CRITICAL, "podium.config"), pytest.raises(SystemExit) as exited:
        refuse_unsafe_production(settings)
    assert exited.value.code == EX_CONFIG
    lines = [r.getMessage() for r in caplog.records]
    assert "production mode: PODIUM_JWT_SECRET is the development key; set a secret of your own" in lines
    assert any(line.startswith("production mode: PODIUM_GRPC_TLS_CERT_FILE is unset") for line in lines)


def test_production_mode_with_safe_settings_goes_on(caplog):
    with caplog.at_level(logging.CRITICAL, "podium.config"):
        refuse_unsafe_production(safe(RoomSettings))
    assert caplog.records == []


def test_development_mode_allows_every_default():
    # The dev stack (podium up) runs with no configuration at all.
    for cls in SERVICE_SETTINGS:
        settings = cls()
        assert settings.env == "development"
        refuse_unsafe_production(settings)
