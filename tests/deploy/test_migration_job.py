"""The migration Job: in every render with a database, before the services, with the owner's Secret alone."""

from __future__ import annotations

from pathlib import Path

from deploy.check.migrations import check_migration_job
from tests.deploy.conftest import edit, render


def test_every_render_with_a_database_migrates_with_a_job_of_its_own(renders):
    assert check_migration_job(renders) == []
    prod = next(r for r in renders if r.name == "overlays/prod")
    job = prod.get("Job", "podium-migrate")
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/podium/podium:0.1.0"


def test_a_render_without_the_job_fails(repo: Path):
    edit(repo / "deploy/k8s/base/kustomization.yaml", "  - migrate.yaml\n", "")
    assert check_migration_job([render(repo, "overlays/prod")]) == [
        "overlays/prod: Job/podium-migrate: missing (services run no DDL: the schemas are migrated by this Job)"
    ]


def test_a_service_with_the_owners_credentials_fails(repo: Path):
    edit(repo / "deploy/k8s/base/room.yaml", "name: podium-db-runtime", "name: podium-db-app")
    problems = check_migration_job([render(repo, "overlays/prod")])
    assert (
        "overlays/prod: room: DATABASE_URL is the owner's Secret podium-db-app: use the runtime role's"
        in problems
    )


def test_a_job_without_a_role_to_grant_fails(repo: Path):
    edit(repo / "deploy/k8s/base/migrate.yaml", "PODIUM_MIGRATE_GRANT_ROLE: podium_runtime", "OTHER: x")
    problems = check_migration_job([render(repo, "overlays/dev")])
    assert any("PODIUM_MIGRATE_GRANT_ROLE must name the services' role" in p for p in problems)
