"""Fixtures for the deployment checks: the repository's renders, and a scratch copy to break."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from deploy.check.render import Render, kustomize, render_all

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def renders() -> list[Render]:
    return render_all(ROOT / "deploy" / "k8s")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of everything the checks read, to break on purpose."""
    shutil.copytree(ROOT / "deploy" / "k8s", tmp_path / "deploy" / "k8s")
    for name in ("Tiltfile", "Dockerfile", ".dockerignore", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def render(repo: Path, target: str) -> Render:
    """Renders one target of a copy ("overlays/prod", "base", "components/..." need a kustomization)."""
    docs, error = kustomize(repo / "deploy" / "k8s" / target)
    assert not error, error
    return Render(target, docs)


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, count))
