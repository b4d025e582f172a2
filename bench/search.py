"""SearchSpaces latency over a directory of many Spaces (issue 19's benchmark).

1. Write the history of `spaces` Spaces to the room topic: each created with a title of 3 to 6
   words and a description of 8 to 16, drawn from a vocabulary whose words are as unevenly
   common as words are (Zipf), 1 or 2 topics and a language; a tenth of them started, with
   listeners; a tenth of those ended.
   Spaces are created a second apart, as a history is, so the newest are the last written.
2. Start the room service: its directory builds itself from the log.
3. Call SearchSpaces over real gRPC, one call at a time, with a mix of what a discovery screen
   asks: one common word, one rare word, two words, a word with a state and a topic, no words
   with filters ordered by listeners, and a host's Spaces; each asks for the first page of 20.
   Latency is from the call to its answer, as the gateway sees it.
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import grpc

from bench.rebuild import write_events
from bench.stack import BenchStack
from libs.auth.tokens import mint_token
from libs.config.settings import DEV_JWT_SECRET, PodiumSettings
from libs.events.topics import ROOM_EVENTS
from podium.room.v1 import room_events_pb2 as ev
from podium.room.v1 import room_service_pb2 as pb
from podium.room.v1 import room_service_pb2_grpc
from podium.room.v1 import room_types_pb2 as types
from services.room.domain.limits import DEFAULT_TOPICS

TOPICS = sorted(DEFAULT_TOPICS)
LANGUAGES = ("en", "en", "en", "es", "pt-BR", "ja", "de", "fr", "hi", "ar")
HOSTS = 20_000


def vocabulary(size: int = 5_000) -> list[str]:
    rng = random.Random(7)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = set()
    while len(words) < size:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(3, 9))))
    return sorted(words)


WORDS = vocabulary()
# Zipf: the k-th word is drawn with weight 1/k, so a few words are in many titles.
WEIGHTS = [1 / (k + 1) for k in range(len(WORDS))]


def space_story(rng: random.Random):
    def story(space_id: str, _per_space: int) -> list:
        host = f"host-{rng.randrange(HOSTS)}"
        title = " ".join(rng.choices(WORDS, WEIGHTS, k=rng.randint(3, 6)))
        created = ev.SpaceCreated(
            space_id=space_id,
            host_user_id=host,
            title=title,
            description=" ".join(rng.choices(WORDS, WEIGHTS, k=rng.randint(8, 16))),
            join_policy=types.JOIN_POLICY_ANYONE,
            topics=rng.sample(TOPICS, rng.randint(1, 2)),
            language=rng.choice(LANGUAGES),
        )
        events = [created]
        if rng.random() < 0.1:
            events += [
                ev.SpaceStarted(space_id=space_id, host_user_id=host),
                ev.ParticipantJoined(space_id=space_id, user_id=host, role=types.ROLE_HOST),
            ]
            events += [
                ev.ParticipantJoined(space_id=space_id, user_id=f"l{i}", role=types.ROLE_LISTENER)
                for i in range(rng.randint(0, 30))
            ]
            if rng.random() < 0.1:
                events.append(ev.SpaceEnded(space_id=space_id))
        return events

    return story


def requests(rng: random.Random) -> list[tuple[str, pb.SearchSpacesRequest]]:
    common, rare = WORDS[:20], WORDS[1000:]
    live = [types.SPACE_STATE_LIVE]
    return [
        ("one common word", pb.SearchSpacesRequest(query=rng.choice(common), page_size=20)),
        ("one rare word", pb.SearchSpacesRequest(query=rng.choice(rare), page_size=20)),
        ("two words", pb.SearchSpacesRequest(query=" ".join(rng.sample(common[:200], 2)), page_size=20)),
        (
            "a word, live, a topic",
            pb.SearchSpacesRequest(
                query=rng.choice(common), states=live, topics=[rng.choice(TOPICS)], page_size=20
            ),
        ),
        (
            "live in a language, by listeners",
            pb.SearchSpacesRequest(
                states=live,
                language=rng.choice(LANGUAGES),
                order_by=types.SPACE_ORDER_LISTENERS,
                page_size=20,
            ),
        ),
        (
            "a host's Spaces",
            pb.SearchSpacesRequest(host_user_ids=[f"host-{rng.randrange(HOSTS)}"], page_size=20),
        ),
    ]


@dataclass
class SearchResult:
    spaces: int
    events: int
    directory_seconds: float  # the room's start with its directory built from the log
    calls: int
    latencies_ms: dict[str, list[float]]

    def percentile(self, q: float, kind: str | None = None) -> float:
        values = sorted(
            v for k, vs in self.latencies_ms.items() if kind in (None, k) for v in vs
        )  # fmt: skip
        return values[min(len(values) - 1, int(q * len(values)))]


async def run(spaces: int, calls: int) -> SearchResult:
    rng = random.Random(19)
    async with BenchStack() as stack:
        settings = PodiumSettings(kafka_bootstrap_servers=stack.bootstrap)
        written, made = await write_events(
            settings,
            ROOM_EVENTS,
            spaces * 100,
            story=space_story(rng),
            spaces=spaces,
            apart=timedelta(seconds=1),
        )
        started = time.perf_counter()
        # The history is written to the log only, not to the event store the directory folds a
        # Space from when its state has left memory: keep every Space's state in memory.
        room = await stack.start(
            "room", timeout=1800, env={"PODIUM_ROOM_DIRECTORY_CACHE_SPACES": str(spaces)}
        )
        directory = time.perf_counter() - started
        # The steady state: autovacuum analyzes a table that grew this much within its naptime (a
        # minute), but this one was built a moment ago, and without statistics the planner takes a
        # common word for a rare one (RESULTS.md 2026-12-04 has the figures without this).
        conn = await asyncpg.connect(stack.database_url)
        try:
            await conn.execute("ANALYZE room.space_directory_v2")
        finally:
            await conn.close()
        token = (("authorization", f"Bearer {mint_token(DEV_JWT_SECRET, 'searcher', ttl_seconds=3600)}"),)
        latencies: dict[str, list[float]] = {}
        async with grpc.aio.insecure_channel(room.address) as channel:
            stub = room_service_pb2_grpc.RoomServiceStub(channel)
            for _ in range(20):  # warm the connection and PostgreSQL's caches
                for _kind, request in requests(rng):
                    await stub.SearchSpaces(request, metadata=token)
            done = 0
            while done < calls:
                for kind, request in requests(rng):
                    began = time.perf_counter()
                    await stub.SearchSpaces(request, metadata=token)
                    latencies.setdefault(kind, []).append((time.perf_counter() - began) * 1000)
                    done += 1
        return SearchResult(made, written, directory, done, latencies)


def summary(result: SearchResult) -> dict:
    return {
        "spaces": result.spaces,
        "events": result.events,
        "room_start_with_directory_s": round(result.directory_seconds, 1),
        "calls": result.calls,
        "p50_ms": round(result.percentile(0.5), 2),
        "p99_ms": round(result.percentile(0.99), 2),
        "by_kind": {
            kind: {
                "p50_ms": round(statistics.median(values), 2),
                "p99_ms": round(result.percentile(0.99, kind), 2),
            }
            for kind, values in result.latencies_ms.items()
        },
    }
