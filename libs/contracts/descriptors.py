"""Writes docs/podium.binpb, the published schema: every Podium proto as one `FileDescriptorSet`.

`buf build` makes it, with its imports (google.protobuf's well-known types and
google.api's annotations), so one file is enough to decode any topic: Python's
`descriptor_pool`, Spark's `from_protobuf(descFilePath=...)`, ClickHouse,
`protoc --decode`, `buf convert`. It keeps the source info, so the comments (the
meaning of every field) travel with it. docs/analysts.md shows it in use.

Run `python -m libs.contracts.descriptors`; CI runs it with `--check` and fails
when the committed set is stale.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from libs.contracts.codegen import ROOT

OUT = ROOT / "docs" / "podium.binpb"


def build(out: Path) -> None:
    """`buf build` of the module in buf.yaml into `out`, as a plain FileDescriptorSet (not a buf image,
    whose extra fields other tools would not expect)."""
    command = ["npx", "--no-install", "buf", "build", "--as-file-descriptor-set", "-o", str(out)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"buf build failed ({' '.join(command)}):\n{result.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if docs/podium.binpb is stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        built = Path(tmp) / "podium.binpb"
        build(built)
        if args.check:
            if not OUT.exists() or OUT.read_bytes() != built.read_bytes():
                sys.exit(
                    "docs/podium.binpb is stale: run `python -m libs.contracts.descriptors` and commit it"
                )
            print("docs/podium.binpb is current")
            return
        OUT.write_bytes(built.read_bytes())
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
