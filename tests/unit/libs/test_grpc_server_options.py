"""Every gRPC server asks long-lived client connections to move on, so a scale-out gets traffic."""

from __future__ import annotations

from libs.config.settings import PodiumSettings
from libs.grpckit.server import server_options


def test_connections_are_asked_to_go_away_after_the_configured_age_and_calls_under_way_finish():
    options = dict(server_options(PodiumSettings()))
    assert options["grpc.max_connection_age_ms"] == 300_000
    assert "grpc.max_connection_age_grace_ms" not in options  # gRPC's default: until they end


def test_the_age_and_its_grace_are_settings():
    options = dict(
        server_options(
            PodiumSettings(grpc_max_connection_age_seconds=60, grpc_max_connection_age_grace_seconds=30)
        )
    )
    assert options["grpc.max_connection_age_ms"] == 60_000
    assert options["grpc.max_connection_age_grace_ms"] == 30_000


def test_an_age_of_zero_never_sends_goaway():
    assert "grpc.max_connection_age_ms" not in dict(
        server_options(PodiumSettings(grpc_max_connection_age_seconds=0))
    )
