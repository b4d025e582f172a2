"""Renders every kustomize target: base with each subset of the components, and each overlay."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

COMPONENTS = ("strimzi", "cloudnative-pg", "otel-collector", "network-policies", "grpc-tls", "kafka-tls")
# A component that patches another's resources is rendered only with it (and listed after it).
REQUIRES = {"kafka-tls": ("strimzi",)}
# Components that add resources of their own which no other component patches (turn also appends
# two variables to the gateway's env, which commutes with the others' patches): rendered once on
# the base (and in the overlays that use them), not in every combination.
ALONE = ("monitoring", "turn")
OVERLAYS = ("dev", "prod")


@dataclass
class Render:
    name: str  # "base", "base+strimzi+otel-collector", "overlays/dev"
    docs: list[dict] = field(default_factory=list)
    error: str = ""

    def of_kind(self, *kinds: str) -> list[dict]:
        return [d for d in self.docs if d.get("kind") in kinds]

    def get(self, kind: str, name: str) -> dict | None:
        for d in self.docs:
            if d.get("kind") == kind and d.get("metadata", {}).get("name") == name:
                return d
        return None


@cache
def kubectl() -> str:
    """kubectl with a kustomize new enough for components (v4+; this machine's has v5)."""
    found = shutil.which("kubectl")
    if not found:
        raise FileNotFoundError("kubectl not found: it ships with this machine image (see .ci/run)")
    out = subprocess.run([found, "version", "--client"], capture_output=True, text=True, timeout=60).stdout
    version = re.search(r"Kustomize Version: v(\d+)\.", out)
    if not version or int(version.group(1)) < 4:
        raise RuntimeError(f"kubectl's kustomize is too old for components (need v4+): {out.strip()}")
    return found


def kustomize(directory: Path) -> tuple[list[dict], str]:
    """`kubectl kustomize DIR`: the documents, or an error message."""
    proc = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0:
        return [], proc.stderr.strip() or f"kubectl kustomize exited {proc.returncode}"
    try:
        return [d for d in yaml.safe_load_all(proc.stdout) if d], ""
    except yaml.YAMLError as e:
        return [], f"rendered YAML does not parse: {e}"


def combinations() -> list[tuple[str, ...]]:
    """Every subset of the components that has what each needs (REQUIRES), base alone first;
    then each of ALONE on the base."""
    return [
        combo
        for n in range(len(COMPONENTS) + 1)
        for combo in itertools.combinations(COMPONENTS, n)
        if all(set(REQUIRES.get(c, ())) <= set(combo) for c in combo)
    ] + [(c,) for c in ALONE]


def render_all(k8s: Path) -> list[Render]:
    targets: list[tuple[str, Path]] = []
    with tempfile.TemporaryDirectory(prefix="podium-kustomize-") as tmp:
        for combo in combinations():
            name = "+".join(("base", *combo))
            target = Path(tmp, name)
            target.mkdir()
            # kustomize refuses absolute paths to bases and components: relative ones.
            lines = [
                "apiVersion: kustomize.config.k8s.io/v1beta1",
                "kind: Kustomization",
                "resources:",
                f"  - {os.path.relpath(k8s / 'base', target)}",
            ]
            if combo:
                lines.append("components:")
                lines += [f"  - {os.path.relpath(k8s / 'components' / c, target)}" for c in combo]
            (target / "kustomization.yaml").write_text("\n".join(lines) + "\n")
            targets.append((name, target))
        targets += [(f"overlays/{o}", k8s / "overlays" / o) for o in OVERLAYS]
        with ThreadPoolExecutor(max_workers=2) as pool:  # CI has two cores
            outputs = list(pool.map(lambda t: kustomize(t[1]), targets))
    return [Render(name, docs, error) for (name, _), (docs, error) in zip(targets, outputs, strict=True)]


def check_rendered(renders: list[Render]) -> list[str]:
    problems = [f"{r.name}: {r.error}" for r in renders if r.error]
    problems += [f"{r.name}: rendered nothing" for r in renders if not r.error and not r.docs]
    return problems
