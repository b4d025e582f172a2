"""The image installs only `[project].dependencies`: everything the shipped code imports must be there.

Scans the top-level imports (module scope and inside functions) of libs/, services/
and cli/, maps each third-party module to the distributions that provide it, and
fails when none of them is in the runtime dependency closure (the declared
dependencies and, transitively, what they require). A module needed only by the
dev extra (pytest, numpy for a benchmark) would crash the service in the image.

The one way to use an extra (`dev`, `analyst`) from shipped code is
`libs.extras.optional("module", "extra", purpose)` inside the function that needs it:
each such call must name an extra of pyproject.toml that provides the module, and the
module must not be imported anywhere else. tests/deploy checks that every service and
the `podium` command import without any extra installed.
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


def _expand(extras: dict[str, list[str]], name: str) -> list[str]:
    """An extra's requirements, with the extras it includes (dev has "podium[analyst]") spelled out."""
    out = []
    for line in extras[name]:
        req = Requirement(line)
        if canonicalize_name(req.name) == "podium":
            for included in req.extras:
                out += _expand(extras, included)
        else:
            out.append(line)
    return out


def extra_only_modules(root: Path) -> set[str]:
    """Top-level modules that only the extras provide (what the image does not have)."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    runtime = _closure(project["dependencies"])
    extras = set()
    for name in project.get("optional-dependencies", {}):
        extras |= _closure(_expand(project["optional-dependencies"], name))
    return {
        module
        for module, dists in md.packages_distributions().items()
        if {canonicalize_name(d) for d in dists} & (extras - runtime)
        and not {canonicalize_name(d) for d in dists} & runtime
    }


def _optional_calls(path: Path) -> list[tuple[str, str]]:
    """(module, extra) of each `optional("module", "extra", ...)` call."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", "")) == "optional"
            and len(node.args) >= 2
            and all(isinstance(a, ast.Constant) for a in node.args[:2])
        ):
            found.append((node.args[0].value, node.args[1].value))
    return found


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
            problems += _check_optional(root, path, project, providers)
    return problems


def _check_optional(root: Path, path: Path, project: dict, providers: dict[str, list[str]]) -> list[str]:
    problems = []
    extras = project.get("optional-dependencies", {})
    calls = _optional_calls(path) if "optional(" in path.read_text() else []
    for module, extra in calls:
        where = f"{path.relative_to(root)}: optional({module!r}, {extra!r})"
        if extra not in extras:
            problems.append(f"{where}: pyproject.toml has no extra {extra!r}")
            continue
        closure = _closure(_expand(extras, extra))
        dists = {canonicalize_name(d) for d in providers.get(module.split(".")[0], [])}
        if not dists & closure:
            problems.append(f"{where}: the extra {extra!r} does not provide {module.split('.')[0]}")
    return problems
