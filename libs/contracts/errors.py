"""Writes docs/errors.md, the catalogue of the reasons Podium's calls are refused for.

Run `python -m libs.contracts.errors`; CI runs it with `--check` and fails when the
committed catalogue is stale. Every entry comes from the registry the error types
take their reasons from (`libs/domain/reasons.py`), so a new reason is documented
where it is declared.
"""

from __future__ import annotations

import argparse
import sys

from google.rpc import code_pb2

from libs.contracts.codegen import ROOT
from libs.domain.reasons import CODES, Reason
from libs.grpckit.errors import ERROR_DOMAIN

OUT = ROOT / "docs" / "errors.md"

HEADER = f"""# Error catalogue

Generated from `libs/domain/reasons.py` by `python -m libs.contracts.errors`; CI
fails when this file is stale. Do not edit by hand.

A refused call ends with a canonical gRPC status code, a message for people, and
in the status details (`grpc-status-details-bin`, read with `grpcio-status` or any
`google.rpc.Status` decoder) a `google.rpc.ErrorInfo` whose `domain` is
`{ERROR_DOMAIN}` and whose `reason` is one of those below. Key on the code and the
reason, never on the message: messages change, reasons do not. Besides ErrorInfo,
`INVALID_ARGUMENT` carries `google.rpc.BadRequest` (one violation per field), and
`RESOURCE_EXHAUSTED` and `UNAVAILABLE` may carry `google.rpc.RetryInfo` (how long to
wait). A refused call changed nothing.

"Retry" below means with the same `request_id` for a mutation: a call retried with
its `request_id` is applied at most once, and a retry of one that was applied
returns its first answer. A status without ErrorInfo is `INTERNAL` (a bug, logged
with its stack trace on the server) or comes from gRPC itself (`DEADLINE_EXCEEDED`,
`CANCELLED`, or `UNAVAILABLE` when no server answers): retry those with backoff.

`NOT_A_PARTICIPANT` and `NOT_A_SPEAKER` come with two codes: `PERMISSION_DENIED`
when the caller lacks the place the call needs, `FAILED_PRECONDITION` when the user
the call is about is not (or no longer) in that place. `ReportPresence` refuses
entries one by one: each of its `rejected` entries has a `reason` from this list
(`SPACE_NOT_FOUND` or `SPACE_ENDED`).
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    lines = [HEADER, "| Code | Reasons |", "|---|---|"]
    by_code = {code: [r for r in Reason if r.code == code] for code in CODES}
    for code, reasons in by_code.items():
        names = ", ".join(f"`{r.reason}`" for r in sorted(reasons, key=lambda r: r.reason))
        lines.append(f"| [`{code}`](#{code.lower()}) ({code_pb2.Code.Value(code)}) | {names} |")
    lines.append("")
    for code, reasons in by_code.items():
        lines += [f"## {code}", "", "| Reason | Meaning | What a client does |", "|---|---|---|"]
        for reason in sorted(reasons, key=lambda r: r.reason):
            lines.append(f"| `{reason.reason}` | {_cell(reason.meaning)} | {_cell(reason.action)} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if docs/errors.md is stale")
    text = render()
    if parser.parse_args().check:
        if not OUT.exists() or OUT.read_text() != text:
            sys.exit("docs/errors.md is stale: run `python -m libs.contracts.errors` and commit it")
        print("docs/errors.md is current")
        return
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
