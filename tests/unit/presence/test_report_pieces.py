"""A report's users for one record go in pieces that each fit a heartbeat record."""

from __future__ import annotations

from services.presence.api.presence_api import RECORD_BYTES, _pieces


def test_pieces_keep_every_user_in_order_and_each_fits_the_budget():
    users = [f"user-{n:06d}" for n in range(10_000)]  # 11 characters: 14 bytes an id in a record
    pieces = _pieces(users, budget=14 * 1_000)
    assert [u for piece in pieces for u in piece] == users
    assert [len(piece) for piece in pieces] == [1_000] * 10
    assert _pieces([], budget=100) == []


def test_an_id_longer_than_the_budget_is_a_piece_of_its_own():
    assert _pieces(["x" * 50, "y", "z"], budget=10) == [["x" * 50], ["y", "z"]]


def test_the_budget_is_well_under_the_producers_record():
    assert RECORD_BYTES <= 1024 * 1024 // 2
