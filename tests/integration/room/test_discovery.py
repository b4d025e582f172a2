"""Finding Spaces over real gRPC: search, filters, orders, batch get, and pages that hold still.

The room process shares its directory with the other tests of the session, so every Space here
carries a word of its own (`tag`) and hosts of its own, and every search names one of them.
"""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2

from podium.room.v1 import room_types_pb2 as types
from tests.integration.clients import RoomClient, field_violations

pytestmark = pytest.mark.integration

LIVE, SCHEDULED = types.SPACE_STATE_LIVE, types.SPACE_STATE_SCHEDULED


async def _rejected(call, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    assert caught.value.details()
    return caught.value


async def _all_pages(client: RoomClient, **request) -> list[types.Space]:
    found, token = [], ""
    while True:
        page = await client.SearchSpaces(page_token=token, **request)
        found.extend(page.spaces)
        token = page.next_page_token
        if not token:
            return found


async def _until(check, timeout: float = 10.0):
    """The directory lags the write side by milliseconds: ask until `check` returns a value."""
    async with asyncio.timeout(timeout):
        while (result := await check()) is None:
            await asyncio.sleep(0.05)
    return result


async def test_search_finds_by_words_filters_and_orders_and_pages(room, users):
    tag = f"t{uuid.uuid4().hex[:8]}"
    ada, bo, listener_a, listener_b = users(f"ada-{tag}", f"bo-{tag}", "la", "lb")
    jazz = await ada.CreateSpace(
        title=f"Late night jazz {tag}", description="standards and bebop", topics=["music"], language="en"
    )
    rock = await bo.CreateSpace(
        title=f"Rock history {tag}", description="jazz influences on rock", topics=["music", "news"],
        language="pt-BR",
    )  # fmt: skip
    code = await ada.CreateSpace(title=f"Python office hours {tag}", topics=["technology"], language="en-GB")
    for space in (jazz, rock):
        await (ada if space is jazz else bo).StartSpace(space_id=space.space.space_id)
    for listener in (listener_a, listener_b):
        await listener.JoinSpace(space_id=rock.space.space_id)
    ids = {"jazz": jazz.space.space_id, "rock": rock.space.space_id, "code": code.space.space_id}
    name = {v: k for k, v in ids.items()}

    async def settled():
        found = await _all_pages(ada, query=tag)
        counts = {s.space_id: s.listener_count for s in found}
        return found if len(found) == 3 and counts[ids["rock"]] == 2 else None

    await _until(settled)

    # Words: all of them, in any case; the title weighs more than the description.
    by_relevance = await _all_pages(ada, query=f"JAZZ {tag}")
    assert [name[s.space_id] for s in by_relevance] == ["jazz", "rock"]
    assert [name[s.space_id] for s in await _all_pages(ada, query=f"python {tag}")] == ["code"]
    assert await _all_pages(ada, query=f"opera {tag}") == []
    # Filters: state, topics (any of), language (its primary subtag too), hosts.
    assert {name[s.space_id] for s in await _all_pages(ada, query=tag, states=[LIVE])} == {"jazz", "rock"}
    assert {name[s.space_id] for s in await _all_pages(ada, query=tag, topics=["news", "technology"])} == {
        "rock",
        "code",
    }
    assert {name[s.space_id] for s in await _all_pages(ada, query=tag, language="en")} == {"jazz", "code"}
    assert {name[s.space_id] for s in await _all_pages(ada, query=tag, language="pt")} == {"rock"}
    hosts = [f"bo-{tag}"]
    assert [name[s.space_id] for s in await _all_pages(ada, host_user_ids=hosts)] == ["rock"]
    # Orders: listeners now; start time (earliest first).
    listeners = await _all_pages(ada, query=tag, order_by=types.SPACE_ORDER_LISTENERS)
    assert name[listeners[0].space_id] == "rock" and listeners[0].listener_count == 2
    by_start = await _all_pages(ada, query=tag, order_by=types.SPACE_ORDER_START_TIME)
    assert [name[s.space_id] for s in by_start] == ["code", "jazz", "rock"]  # created, started, started
    # Pages of one: the same Spaces, each once, in the same order.
    one_by_one = await _all_pages(ada, query=tag, order_by=types.SPACE_ORDER_START_TIME, page_size=1)
    assert [s.space_id for s in one_by_one] == [s.space_id for s in by_start]

    # Topics and language are the Space's own, returned everywhere and changed by UpdateSpace.
    assert list(rock.space.topics) == ["music", "news"] and rock.space.language == "pt-BR"
    updated = await ada.UpdateSpace(
        space_id=ids["code"],
        update_mask=field_mask_pb2.FieldMask(paths=["topics", "language"]),
        topics=["education"],
        language="de",
    )
    assert list(updated.space.topics) == ["education"] and updated.space.language == "de"
    await _until(
        lambda: _found_once(ada, query=tag, topics=["education"], language="de"),
    )


async def _found_once(client: RoomClient, **request):
    found = await _all_pages(client, **request)
    return found if len(found) == 1 else None


async def test_bad_searches_and_topics_are_refused_with_the_field(room, users):
    (host,) = users("picky")
    for request, field in [
        ({"query": "x" * 201}, "query"),
        ({"language": "english please"}, "language"),
        ({"states": [99]}, "states"),
        ({"order_by": 42}, "order_by"),
        ({"host_user_ids": ["h"] * 101}, "host_user_ids"),
    ]:
        error = await _rejected(host.SearchSpaces(**request), grpc.StatusCode.INVALID_ARGUMENT)
        assert field in field_violations(error), request
    for fields, field in [
        ({"topics": ["music", "news", "sports", "arts"]}, "topics"),
        ({"topics": ["knitting"]}, "topics"),
        ({"topics": ["music", "music"]}, "topics"),
        ({"language": "en_US"}, "language"),
    ]:
        error = await _rejected(host.CreateSpace(title="t", **fields), grpc.StatusCode.INVALID_ARGUMENT)
        assert field in field_violations(error), fields
    page = await host.SearchSpaces(query="", page_size=1)
    if page.next_page_token:  # a token is bound to its query
        await _rejected(
            host.SearchSpaces(query="other", page_token=page.next_page_token),
            grpc.StatusCode.INVALID_ARGUMENT,
        )


async def test_batch_get_returns_spaces_in_the_order_asked_and_names_the_missing(room, users):
    (host,) = users("batcher")
    made = [(await host.CreateSpace(title=f"batch {i}")).space.space_id for i in range(3)]
    unknown = f"no-such-{uuid.uuid4().hex[:6]}"
    asked = [made[2], unknown, made[0], made[2], made[1]]

    async def complete():
        got = await host.BatchGetSpaces(space_ids=asked)
        return got if len(got.spaces) == 3 else None

    got = await _until(complete)
    assert [s.space_id for s in got.spaces] == [made[2], made[0], made[1]]
    assert list(got.missing_space_ids) == [unknown]
    for ids in ([], [f"s{i}" for i in range(101)]):
        error = await _rejected(host.BatchGetSpaces(space_ids=ids), grpc.StatusCode.INVALID_ARGUMENT)
        assert "space_ids" in field_violations(error)


async def test_participants_paged_while_people_join_and_leave_repeat_nobody_and_skip_only_leavers(
    room, users
):
    (host,) = users("pager-host")
    space_id = (await host.CreateSpace(title="Busy room")).space.space_id
    await host.StartSpace(space_id=space_id)
    first = [f"p{i:02d}" for i in range(12)]
    clients = dict(zip(first, users(*first), strict=True))
    for client in clients.values():
        await client.JoinSpace(space_id=space_id)
    seen: list[str] = []
    left: set[str] = set()
    arrived: list[str] = []
    token, turn = "", 0
    while True:
        page = await host.ListParticipants(space_id=space_id, page_size=3, page_token=token)
        seen.extend(p.user_id for p in page.participants)
        token = page.next_page_token
        if not token:
            break
        # Between pages: one of those not yet listed leaves, one listed leaves, a newcomer joins.
        pending = [u for u in first if u not in seen and u not in left]
        listed = [u for u in first if u in seen and u not in left]
        for user in (pending[:1] + listed[:1]) if turn % 2 == 0 else pending[-1:]:
            await clients[user].LeaveSpace(space_id=space_id)
            left.add(user)
        newcomer = f"n{turn:02d}"
        (client,) = users(newcomer)
        await client.JoinSpace(space_id=space_id)
        arrived.append(newcomer)
        turn += 1
    assert len(seen) == len(set(seen)), "nobody is listed twice"
    present = {"pager-host", *first, *arrived} - left
    assert present <= set(seen), "everyone still in was listed"
    assert {"pager-host", *first} - set(seen) <= left, "only those who left were skipped"
