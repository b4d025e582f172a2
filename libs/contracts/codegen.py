"""Generates Python code, gRPC stubs and type stubs from `protos/` into `gen/`.

Run `python -m libs.contracts.codegen`; CI runs it with `--check` and fails when
the committed code is stale.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"
GEN = ROOT / "gen"


def include_paths() -> list[str]:
    """protoc's -I arguments: protos/ and protobuf's well-known types."""
    import grpc_tools

    return [f"-I{PROTOS}", f"-I{Path(grpc_tools.__file__).parent / '_proto'}"]


def our_protos() -> list[str]:
    """Podium's proto files, relative to protos/. protos/google/ holds google.api's annotations
    (field_behavior), vendored from googleapis-common-protos: imported by ours, not generated
    here, since that Python package provides their code at runtime."""
    return sorted(str(p.relative_to(PROTOS)) for p in (PROTOS / "podium").rglob("*.proto"))


def generate(out: Path) -> None:
    """Runs protoc (from grpcio-tools) over every proto file into `out`."""
    from grpc_tools import protoc

    files = our_protos()
    args = [
        "protoc",
        *include_paths(),
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for folder in [p for p in (out / "podium").rglob("*") if p.is_dir()] + [out / "podium"]:
        (folder / "__init__.py").touch()


def _differences(a: Path, b: Path) -> list[str]:
    cmp = filecmp.dircmp(a, b)
    found = [str(Path(a, n)) for n in cmp.left_only + cmp.right_only + cmp.diff_files]
    for sub in cmp.common_dirs:
        found += _differences(a / sub, b / sub)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if gen/ is stale instead of writing it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        generate(out)
        if args.check:
            stale = _differences(out / "podium", GEN / "podium") if (GEN / "podium").exists() else ["gen/"]
            stale = [s for s in stale if "__pycache__" not in s]
            if stale:
                print("generated code is stale; run `python -m libs.contracts.codegen`:", *stale, sep="\n  ")
                sys.exit(1)
            print("generated code is up to date")
            return
        shutil.rmtree(GEN, ignore_errors=True)
        GEN.mkdir()
        shutil.copytree(out / "podium", GEN / "podium")
    print(f"generated {GEN.relative_to(ROOT)}/")


if __name__ == "__main__":
    main()
