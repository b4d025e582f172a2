"""Published events stay readable: every frozen encoded event still decodes to what it said."""

import json
from pathlib import Path

import pytest
from google.protobuf import json_format

from libs.events.envelope import decode

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
CASES = sorted(GOLDEN.glob("*.bin"))


def test_there_are_golden_events():
    assert len(CASES) >= 5


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_a_golden_event_decodes_to_its_recorded_form(path: Path):
    envelope, payload = decode(path.read_bytes())
    expected = json.loads(path.with_suffix(".json").read_text())
    assert json_format.MessageToDict(envelope) == expected["envelope"]
    assert json_format.MessageToDict(payload) == expected["payload"]
