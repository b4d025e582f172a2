"""Every refusal is documented: the error types take only registered reasons, of their own code.

The registry (`libs/domain/reasons.py`) is what docs/errors.md is generated from. The error types
refuse a reason that is not a `Reason` or is of another status code when raised; the scan below
holds every raising site in the production code to that without running it, so a reason that is
not in the registry fails here, not in a client.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grpc
import pytest
from google.rpc import code_pb2

from libs.contracts import errors as catalogue
from libs.domain import errors
from libs.domain.reasons import CODES, Reason
from libs.grpckit.errors import to_status

ROOT = Path(__file__).resolve().parents[3]
SCANNED = ("libs", "services", "cli")
DEFINED_IN = Path("libs/domain/errors.py")  # the error types pass the reason on to their base


def _error_classes(trees: dict[Path, ast.Module]) -> dict[str, str]:
    """Name -> status code of every DomainError subclass, the ones defined outside libs/domain too."""
    codes = {
        name: cls.code
        for name, cls in vars(errors).items()
        if isinstance(cls, type) and issubclass(cls, errors.DomainError) and cls is not errors.DomainError
    }
    grew = True
    while grew:
        grew = False
        for tree in trees.values():
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and node.name not in codes:
                    bases = [b.id for b in node.bases if isinstance(b, ast.Name) and b.id in codes]
                    if bases:
                        codes[node.name] = codes[bases[0]]
                        grew = True
    return codes


def _raising_sites():
    trees = {p: ast.parse(p.read_text()) for d in SCANNED for p in sorted((ROOT / d).rglob("*.py"))}
    classes = _error_classes(trees)
    for path, tree in trees.items():
        if path.relative_to(ROOT) == DEFINED_IN:
            continue
        enclosing = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for child in ast.walk(node):
                    enclosing.setdefault(child, node.name)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else None
            if isinstance(func, ast.Attribute) and func.attr == "__init__" and enclosing.get(node) in classes:
                name = enclosing[node]  # super().__init__(...) in a subclass
            if name in classes:
                reason = next((k.value for k in node.keywords if k.arg == "reason"), None)
                yield f"{path.relative_to(ROOT)}:{node.lineno}", name, classes[name], reason


SITES = list(_raising_sites())


def test_the_scan_finds_the_raising_sites():
    assert len(SITES) >= 110  # 115 when written (98 naming a reason, 17 plain InvalidArgument)


@pytest.mark.parametrize(("site", "error", "code", "reason"), SITES, ids=[s[0] for s in SITES])
def test_every_refusal_names_a_registered_reason_of_its_own_code(site, error, code, reason):
    if reason is None:
        assert error == "InvalidArgument" or error not in vars(errors), (
            f"{site}: {error} needs reason=Reason.<...> (docs/errors.md lists them)"
        )
        return
    assert (
        isinstance(reason, ast.Attribute)
        and isinstance(reason.value, ast.Name)
        and reason.value.id == "Reason"
    ), f"{site}: pass reason=Reason.<NAME> from libs/domain/reasons.py, not {ast.unparse(reason)}"
    assert reason.attr in Reason.__members__, f"{site}: Reason.{reason.attr} is not in the registry"
    assert Reason[reason.attr].code == code, f"{site}: Reason.{reason.attr} is not a {code} reason"


def test_an_error_refuses_a_reason_outside_the_registry_or_of_another_code():
    with pytest.raises(TypeError):
        errors.NotFound("gone", reason="SPACE_NOT_FOUND")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        errors.NotFound("gone", reason=Reason.SPACE_ENDED)
    with pytest.raises(TypeError):
        errors.FailedPrecondition("no reason")  # type: ignore[call-arg]


def test_a_reason_sent_with_two_codes_keeps_its_name_on_the_wire():
    for member, code in [
        (Reason.NOT_A_PARTICIPANT, grpc.StatusCode.PERMISSION_DENIED),
        (Reason.USER_NOT_A_PARTICIPANT, grpc.StatusCode.FAILED_PRECONDITION),
        (Reason.NOT_A_SPEAKER, grpc.StatusCode.PERMISSION_DENIED),
        (Reason.USER_NOT_A_SPEAKER, grpc.StatusCode.FAILED_PRECONDITION),
    ]:
        error_type = (
            errors.PermissionDenied if member.code == "PERMISSION_DENIED" else errors.FailedPrecondition
        )
        status = to_status(error_type("refused", reason=member))
        assert status.code == code
        assert member.reason in ("NOT_A_PARTICIPANT", "NOT_A_SPEAKER")
        assert member.reason.encode() in dict(status.trailing_metadata)["grpc-status-details-bin"]
    assert errors.InvalidArgument("bad").reason == "INVALID_ARGUMENT"


def test_every_reason_is_documented_once_per_code_with_a_canonical_code():
    seen = set()
    for reason in Reason:
        assert reason.code in CODES and code_pb2.Code.Value(reason.code) > 0
        assert reason.meaning.strip() and reason.action.strip(), reason
        assert reason.reason.isupper() and reason.reason.replace("_", "").isalpha(), reason
        assert (reason.reason, reason.code) not in seen, reason
        seen.add((reason.reason, reason.code))
    text = catalogue.render()
    for reason in Reason:
        row = f"| `{reason.reason}` | {reason.meaning} | {reason.action} |"
        section = text.split(f"## {reason.code}\n", 1)[1].split("\n## ", 1)[0]
        assert row in section, reason
