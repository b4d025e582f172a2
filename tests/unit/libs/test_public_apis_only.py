"""No Podium module reaches into aiokafka's or faust's private state (issue 17).

Every upgrade of those libraries could break such a reach silently. A real upstream bug is
worked around in `libs/streams/faust_fixes.py` and only there (with tests that notice when
upstream changes, and a line in docs/architecture.md). This scans the production code
(libs/, services/, cli/, bench/) and fails on:

- `x._private` where `x` is, by its name, a Kafka or faust object (an app, consumer, producer,
  client, cluster, admin, reader, table, connection, fetcher, coordinator, ...), at any depth
  (`self._consumer._client`, `app.consumer._read_offset`);
- an assignment to an attribute of such an object or of the aiokafka/faust modules (replacing a
  method, as `app.consumer.highwaters = ...` or `aiokafka.client.MetadataRequest = ...` did);
- `getattr`/`setattr`/`delattr` with a literal private name.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SCANNED = ("libs", "services", "cli", "bench")
THE_ONE_MODULE = Path("libs/streams/faust_fixes.py")
LIBRARIES = {"aiokafka", "faust", "mode"}
KAFKA_OBJECTS = {
    "app",
    "consumer",
    "producer",
    "client",
    "cluster",
    "admin",
    "reader",
    "probe",
    "checker",
    "table",
    "tables",
    "conn",
    "conns",
    "fetcher",
    "coordinator",
    "transport",
    "buffer",
    "recovery",
    "assignor",
    "leader_assignor",
}


def _names(node: ast.AST) -> list[str]:
    """The names along an attribute chain, leading underscores stripped: `self._consumer._client`
    -> ['self', 'consumer', 'client']."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr.lstrip("_"))
        node = node.value
    if isinstance(node, ast.Name):
        names.append(node.id.lstrip("_"))
    return list(reversed(names))


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def reaches(source: str, path: str = "<source>") -> list[str]:
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            owner = _names(node.value)
            if owner and set(owner) & (KAFKA_OBJECTS | LIBRARIES):
                found.append(f"{path}:{node.lineno}: reads .{node.attr} of {'.'.join(owner)}")
        elif isinstance(node, ast.Assign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute):
                    owner = _names(target.value)
                    if owner and owner[0] not in {"self", "cls"} and set(owner) & (KAFKA_OBJECTS | LIBRARIES):
                        found.append(f"{path}:{node.lineno}: replaces {'.'.join(owner)}.{target.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"getattr", "setattr", "delattr"}
            and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and _private(node.args[1].value)
        ):
            found.append(f"{path}:{node.lineno}: {node.func.id}(..., {node.args[1].value!r})")
    return found


def test_no_module_but_the_one_reaches_into_aiokafka_or_faust():
    found = []
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if relative == THE_ONE_MODULE:
                continue
            found += reaches(path.read_text(), str(relative))
    assert found == [], (
        "private reaches into aiokafka/faust outside libs/streams/faust_fixes.py:\n" + "\n".join(found)
    )


def test_the_check_finds_the_reaches_podium_used_to_make():
    """The forms removed in issue 17, each of which the check must catch."""
    before = """
import aiokafka.client
aiokafka.client.MetadataRequest = partial(MetadataRequest, allow_auto_topic_creation=False)
aiokafka.client.AIOKafkaClient._on_connection_closed = _forget
for topic, partitions in cluster._partitions.items(): pass
nodes = {node for (node, _g), c in client._conns.items()}
await consumer._client.force_metadata_update()
name = self.app._leader_assignor._leader_topic_name
client = self.app.producer._producer
for remembered in ("_read_offset", "_committed_offset"):
    getattr(consumer, "_read_offset").clear()
app.consumer.highwaters = self.highwaters
"""
    lines = {int(reach.split(":")[1]) for reach in reaches(before)}
    assert lines == {3, 4, 5, 6, 7, 8, 9, 11, 12}, sorted(lines)


def test_the_one_module_is_where_the_fixes_are():
    fixes = (ROOT / THE_ONE_MODULE).read_text()
    assert reaches(fixes), "faust_fixes.py no longer reaches into faust: is the module still needed?"
