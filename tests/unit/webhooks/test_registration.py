"""What a webhook registration must be: the URL rules, the types, the Spaces, the note."""

from __future__ import annotations

import pytest

from libs.domain.errors import InvalidArgument
from podium.webhooks.v1 import webhook_types_pb2 as wt
from services.webhooks.domain.event_types import ALL_TYPES
from services.webhooks.domain.registration import (
    UrlPolicy,
    local_host,
    public_address,
    registration,
    url_problems,
)

STRICT = UrlPolicy(allow_http=False, allow_private=False)
DEV = UrlPolicy(allow_http=True, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "https://gateway.example.com/hooks/podium",
        "https://8.8.8.8:8443/h?x=1",
        "https://[2001:4860:4860::8888]/h",
    ],
)
def test_a_public_https_url_is_accepted(url):
    assert url_problems(url, STRICT) == []


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("", "must not be empty"),
        ("http://gateway.example.com/h", "must be https"),
        ("ftp://gateway.example.com/h", "must be https"),
        ("https:///no-host", "must name a host"),
        ("https://user:pass@gateway.example.com/h", "credentials"),
        ("https://gateway.example.com/h#frag", "fragment"),
        ("https://gateway.example.com:99999/h", "is not a URL"),
        ("https://gateway.example.com/a b", "no spaces"),
        ("https://" + "a" * 2000 + ".com/", "at most 2000"),
        ("https://127.0.0.1/h", "private"),
        ("https://10.1.2.3/h", "private"),
        ("https://192.168.0.10/h", "private"),
        ("https://169.254.169.254/latest/meta-data", "private"),  # cloud metadata
        ("https://[::1]/h", "private"),
        ("https://[fe80::1]/h", "private"),
        ("https://[::ffff:10.0.0.1]/h", "private"),
        ("https://localhost/h", "private"),
        ("https://api.localhost/h", "private"),
        ("https://db.internal/h", "private"),
        ("https://printer.local/h", "private"),
        ("https://intranet/h", "private"),
        ("https://2130706433/h", "private"),  # 127.0.0.1 as one number: a single label
        ("https://224.0.0.1/h", "private"),  # multicast
    ],
)
def test_a_bad_url_is_refused_saying_why(url, says):
    problems = url_problems(url, STRICT)
    assert problems and says in " ".join(problems), problems


def test_development_allows_http_and_a_receiver_on_this_machine():
    assert url_problems("http://127.0.0.1:8080/h", DEV) == []
    assert url_problems("http://localhost:8080/h", DEV) == []
    assert url_problems("ftp://127.0.0.1/h", DEV) == ["must be https or http"]


def test_addresses_are_judged_public_or_not():
    assert public_address("8.8.8.8") and public_address("2001:4860:4860::8888")
    assert not any(map(public_address, ["10.0.0.1", "127.0.0.1", "::1", "0.0.0.0", "100.64.0.1", "fc00::1"]))
    assert not public_address("::ffff:192.168.1.1")
    assert local_host("[::1]") and not local_host("gateway.example.com")


def test_no_types_means_every_type_and_types_are_kept_once_in_order():
    assert registration("https://a.example/h", [], [], "", STRICT).event_types == ALL_TYPES
    chosen = [
        wt.WEBHOOK_EVENT_TYPE_SPACE_ENDED,
        wt.WEBHOOK_EVENT_TYPE_SPACE_STARTED,
        wt.WEBHOOK_EVENT_TYPE_SPACE_ENDED,
    ]
    assert registration("https://a.example/h", chosen, [], "", STRICT).event_types == (
        wt.WEBHOOK_EVENT_TYPE_SPACE_STARTED,
        wt.WEBHOOK_EVENT_TYPE_SPACE_ENDED,
    )


def test_every_bad_field_is_reported_at_once():
    with pytest.raises(InvalidArgument) as refused:
        registration(
            "http://10.0.0.1/h",
            [wt.WEBHOOK_EVENT_TYPE_UNSPECIFIED, 77],
            ["ok", "", "x" * 200],
            "note\x00",
            STRICT,
        )
    fields = [v.field for v in refused.value.violations]
    assert fields == [
        "url",
        "url",
        "event_types[0]",
        "event_types[1]",
        "space_ids[1]",
        "space_ids[2]",
        "description",
    ]


def test_at_most_a_hundred_spaces_and_a_short_note():
    with pytest.raises(InvalidArgument) as refused:
        registration("https://a.example/h", [], [f"s{i}" for i in range(101)], "n" * 201, STRICT)
    assert {v.field for v in refused.value.violations} == {"space_ids", "description"}
    ok = registration("https://a.example/h ", [], ["s1", "s1", "s2"], "  mine ", STRICT)
    assert (ok.url, ok.space_ids, ok.description) == ("https://a.example/h", ("s1", "s2"), "mine")
