"""Read-your-writes tokens of the room (`libs.domain.streams.room_token`): what an answer reflects,
read back as the streams and versions a view must have reached."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.domain.streams import listener_shard_stream, room_token, space_stream, token_streams


def test_a_token_names_the_spaces_stream_and_the_shards_an_answer_rests_on():
    assert token_streams("s1", room_token(12)) == [(space_stream("s1"), 12)]
    assert token_streams("s1", room_token(12, ((3, 40),))) == [
        (space_stream("s1"), 12),
        (listener_shard_stream("s1", 3), 40),
    ]
    # A leave decided under two counts at a growth rests on two shards.
    assert len(token_streams("s1", room_token(0, ((3, 40), (1, 7))))) == 3


@given(
    st.integers(0, 2**62),
    st.lists(st.tuples(st.integers(0, 255), st.integers(0, 2**62)), max_size=8).map(tuple),
)
def test_every_token_the_room_makes_reads_back_as_it_was_made(version, shards):
    wanted = token_streams("space", room_token(version, shards))
    assert wanted == [
        (space_stream("space"), version),
        *((listener_shard_stream("space", k), v) for k, v in shards),
    ]


@pytest.mark.parametrize(
    "token",
    [
        "",
        "x",
        "-1",
        "12;",
        "12;3=4",
        "12;l=4",
        "12;lx=4",
        "12;l3=",
        "12;l3=-4",
        "١٢",
        ";".join(["1"] + [f"l{k}={k}" for k in range(9)]),
        "9" * 201,
    ],
)
def test_anything_else_is_not_a_token(token):
    with pytest.raises(ValueError):
        token_streams("space", token)
