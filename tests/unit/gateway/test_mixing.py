"""What a listener hears in one tick: planned without codecs (services/gateway/domain/mixing.py)."""

from __future__ import annotations

import grpc
import numpy as np

from services.gateway.domain.errors import http_status
from services.gateway.domain.mixing import SILENCE, Mix, PassThrough, TickFrame, level_dbov, mixed, plan_for
from services.gateway.settings import GatewaySettings

ANA, BEN, CAL = TickFrame("ana", b"a"), TickFrame("ben", b"b"), TickFrame("cal", b"c")


def test_a_single_voice_is_forwarded_as_the_relays_own_frame():
    assert plan_for([ANA], "listener") == PassThrough((b"a",))


def test_a_speaker_never_hears_their_own_voice():
    assert plan_for([ANA], "ana") == SILENCE
    assert plan_for([ANA, BEN], "ana") == PassThrough((b"b",))


def test_two_frames_of_one_voice_in_a_tick_are_forwarded_in_order_not_mixed():
    late = TickFrame("ana", b"a2")
    assert plan_for([ANA, late], "listener") == PassThrough((b"a", b"a2"))
    assert plan_for([ANA, BEN, late], "listener") == Mix(("ana", "ben"))


def test_several_voices_are_mixed_and_the_mix_is_keyed_by_who_is_in_it():
    assert plan_for([ANA, BEN, CAL], "listener") == Mix(("ana", "ben", "cal"))
    assert plan_for([ANA, BEN, CAL], "ben") == Mix(("ana", "cal"))


def test_a_tick_without_frames_is_silence():
    assert plan_for([], "listener") == SILENCE


def test_mixing_sums_and_clips():
    out = mixed([np.full(4, 0.7, np.float32), np.full(2, 0.7, np.float32)])
    assert out.tolist() == [1.0, 1.0, 0.699999988079071, 0.699999988079071]


def test_levels_follow_rfc_6464():
    assert level_dbov(np.zeros(960, np.float32)) == -127
    t = np.arange(960) / 48_000
    assert level_dbov((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)) == -9  # RMS 0.354


def test_grpc_statuses_reach_the_browser_as_their_http_statuses():
    assert http_status(grpc.StatusCode.INVALID_ARGUMENT) == 400
    assert http_status(grpc.StatusCode.PERMISSION_DENIED) == 403
    assert http_status(grpc.StatusCode.NOT_FOUND) == 404
    assert http_status(grpc.StatusCode.FAILED_PRECONDITION) == 409
    assert http_status(grpc.StatusCode.UNAVAILABLE) == 503
    assert http_status(grpc.StatusCode.DATA_LOSS) == 500


def test_a_production_gateway_needs_its_own_token_no_dev_sign_in_and_real_addresses(monkeypatch):
    for name in ("PODIUM_GATEWAY_TOKEN", "PODIUM_GATEWAY_DEV_SIGN_IN", "PODIUM_GATEWAY_ROOM_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    problems = "\n".join(GatewaySettings(env="production").production_problems())
    assert "PODIUM_GATEWAY_TOKEN is unset" in problems
    assert "PODIUM_GATEWAY_DEV_SIGN_IN is on" in problems
    assert "PODIUM_GATEWAY_ROOM_ADDRESS is 127.0.0.1:50051" in problems
    # It uses neither: its Kafka and database settings are nobody's concern.
    assert "KAFKA" not in problems and "DATABASE_URL" not in problems
