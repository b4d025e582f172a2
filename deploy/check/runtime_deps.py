"""The image installs only `[project].dependencies`: everything the shipped code imports must be there.

Scans the top-level imports (module scope and inside functions) of libs/, services/
and cli/, maps each third-party module to the distributions that provide it, and
fails when none of them is in the runtime dependency closure (the declared
dependencies and, transitively, what they require). A module needed only by the
dev extra (pytest, numpy for a benchmark) would crash the service in the image.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

SHIPPED = ("libs", "services", "cli")
FIRST_PARTY = {"libs", "services", "cli", "podium", "deploy", "tests", "bench"}
# Contract tooling: run by developers, CI and the Dockerfile's build stage (with the
# dev extra installed), never by a service, so the runtime image need not carry its imports.
BUILD_TIME = {"libs/contracts/codegen.py", "libs/contracts/catalogue.py", "libs/contracts/asyncapi.py"}


def _closure(requirements: list[str]) -> set[str]:
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if req.marker and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        wanted = {name, *(f"{name}[{e}]" for e in req.extras)}
        if wanted <= seen:
            continue
        seen |= wanted
        try:
            requires = md.requires(req.name) or []
        except md.PackageNotFoundError:
            continue
        for sub in map(Requirement, requires):
            if sub.marker and not any(sub.marker.evaluate({"extra": e}) for e in ("", *req.extras)):
                continue
            todo.append(Requirement(str(sub).split(";")[0]))
    return {s.split("[")[0] for s in seen}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def check_runtime_deps(root: Path) -> list[str]:
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    runtime = _closure(project["dependencies"])
    providers = md.packages_distributions()
    problems = []
    for folder in SHIPPED:
        for path in sorted((root / folder).rglob("*.py")):
            if path.relative_to(root).as_posix() in BUILD_TIME:
                continue
            for module in sorted(_imports(path) - FIRST_PARTY - set(sys.stdlib_module_names)):
                dists = {canonicalize_name(d) for d in providers.get(module, [])}
                if not dists:
                    problems.append(
                        f"{path.relative_to(root)}: imports {module}, which no installed package provides"
                    )
                elif not dists & runtime:
                    problems.append(
                        f"{path.relative_to(root)}: imports {module} ({', '.join(sorted(dists))}), "
                        "not a runtime dependency in pyproject.toml: the image would not have it"
                    )
    return problems
