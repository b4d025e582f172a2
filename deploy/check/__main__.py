"""python -m deploy.check [CHECK ...]: run the deployment checks, print each one's problems.

Exit status 1 if any check found a problem. Checks: render, schemas, catalogue, workloads,
topics, relay-ring, writer-lanes, settings, migrations, secrets, network-policies, monitoring, grpc-tls, kafka, tiltfile,
turn, dockerfile, runtime-deps, hadolint, checkov.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from deploy.check import manifests, tools
from deploy.check.kafka import check_kafka_access
from deploy.check.migrations import check_migration_job
from deploy.check.monitoring import check_monitoring
from deploy.check.render import Render, check_rendered, render_all
from deploy.check.runtime_deps import check_runtime_deps
from deploy.check.schemas import check_schemas
from deploy.check.settings import check_settings
from deploy.check.tiltfile import check_tiltfile
from deploy.check.tls import check_grpc_tls
from deploy.check.turn import check_turn

ROOT = Path(__file__).resolve().parents[2]


def checks(root: Path) -> dict[str, Callable[[list[Render]], list[str]]]:
    def dev(renders: list[Render]) -> Render:
        return next(r for r in renders if r.name == "overlays/dev")

    return {
        "render": check_rendered,
        "schemas": check_schemas,
        "catalogue": manifests.check_catalogue,
        "workloads": manifests.check_workloads,
        "topics": manifests.check_topics,
        "relay-ring": manifests.check_relay_ring,
        "writer-lanes": manifests.check_writer_lanes,
        "settings": check_settings,
        "migrations": check_migration_job,
        "secrets": manifests.check_no_committed_secrets,
        "network-policies": manifests.check_network_policies,
        "monitoring": check_monitoring,
        "grpc-tls": check_grpc_tls,
        "kafka": check_kafka_access,
        "turn": check_turn,
        "tiltfile": lambda renders: check_tiltfile(root / "Tiltfile", dev(renders)),
        "dockerfile": lambda _: tools.check_dockerfile(root / "Dockerfile", root / ".dockerignore"),
        "runtime-deps": lambda _: check_runtime_deps(root),
        "hadolint": lambda _: tools.check_hadolint(root / "Dockerfile"),
        "checkov": tools.check_checkov,
    }


def run(root: Path, selected: list[str]) -> dict[str, list[str]]:
    """Problems per check; renders every kustomize target once and shares it."""
    started = time.monotonic()
    renders = render_all(root / "deploy" / "k8s")
    print(f"rendered {len(renders)} kustomize targets in {time.monotonic() - started:.1f}s", flush=True)
    results = {}
    for name, check in checks(root).items():
        if selected and name not in selected:
            continue
        started = time.monotonic()
        try:
            problems = check(renders)
        except Exception as e:  # a check that cannot run has failed, never passed
            problems = [f"the check could not run: {type(e).__name__}: {e}"]
        results[name] = problems
        status = "ok" if not problems else f"{len(problems)} problem(s)"
        print(f"  {name:<17} {status:<14} {time.monotonic() - started:5.1f}s", flush=True)
        for problem in problems[:50]:
            print(f"      {problem}")
        if len(problems) > 50:
            print(f"      ... and {len(problems) - 50} more")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checks", nargs="*", help="run only these (default: all)")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this checkout)")
    args = parser.parse_args()
    unknown = set(args.checks) - set(checks(args.root))
    if unknown:
        parser.error(f"unknown checks {sorted(unknown)}; known: {', '.join(checks(args.root))}")
    results = run(args.root, args.checks)
    failed = [name for name, problems in results.items() if problems]
    print(
        f"{len(results) - len(failed)} passed, {len(failed)} failed"
        + (f": {', '.join(failed)}" if failed else "")
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
