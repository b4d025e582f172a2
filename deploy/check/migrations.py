"""The migration Job: every render that runs services with a database migrates first, apart.

In each rendered target that deploys a service with a schema:

- a Job `podium-migrate` runs `python -m cli migrate upgrade` with the owner's
  credentials (PODIUM_MIGRATE_DATABASE_URL from a Secret) and grants the
  services' role (PODIUM_MIGRATE_GRANT_ROLE), hardened like the services, with
  a bounded number of retries and the label that opens PostgreSQL to it;
- no service holds the owner's Secret or PODIUM_MIGRATE_DATABASE_URL: their
  DATABASE_URL comes from another Secret (the runtime role, DML only);
- where CloudNativePG runs the database, it manages the granted role from the
  services' Secret.
"""

from __future__ import annotations

from deploy.check.catalogue import SERVICES
from deploy.check.render import Render

JOB = "podium-migrate"
COMMAND = ["python", "-m", "cli", "migrate", "upgrade"]


def _secret_of(container: dict, name: str) -> str | None:
    for item in container.get("env", []):
        if item.get("name") == name:
            return item.get("valueFrom", {}).get("secretKeyRef", {}).get("name")
    return None


def _check_render(render: Render) -> list[str]:
    with_schema = [s for s in SERVICES if s.uses_postgres and render.get(s.kind, s.name) is not None]
    if not with_schema:
        return []
    where = f"{render.name}: Job/{JOB}"
    job = render.get("Job", JOB)
    if job is None:
        return [f"{where}: missing (services run no DDL: the schemas are migrated by this Job)"]
    problems = []
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    if container.get("command") != COMMAND:
        problems.append(f"{where}: must run {' '.join(COMMAND)}")
    owner = _secret_of(container, "PODIUM_MIGRATE_DATABASE_URL")
    if owner is None:
        problems.append(f"{where}: PODIUM_MIGRATE_DATABASE_URL (the owner) must come from a Secret")
    config = {}
    for ref in container.get("envFrom", []):
        cm = render.get("ConfigMap", ref.get("configMapRef", {}).get("name", ""))
        config |= (cm or {}).get("data", {})
    role = config.get("PODIUM_MIGRATE_GRANT_ROLE", "")
    if not role:
        problems.append(f"{where}: PODIUM_MIGRATE_GRANT_ROLE must name the services' role")
    if pod.get("restartPolicy") != "Never" or "backoffLimit" not in job["spec"]:
        problems.append(f"{where}: restartPolicy Never and a backoffLimit: a failed migration must stop")
    security = container.get("securityContext", {})
    if not (
        pod.get("securityContext", {}).get("runAsNonRoot")
        and security.get("readOnlyRootFilesystem")
        and security.get("allowPrivilegeEscalation") is False
        and security.get("capabilities", {}).get("drop") == ["ALL"]
        and container.get("resources", {}).get("limits")
    ):
        problems.append(
            f"{where}: harden it as the services are (non-root, read-only, no capabilities, limits)"
        )
    if job["spec"]["template"]["metadata"].get("labels", {}).get("podium.dev/uses-postgres") != "true":
        problems.append(f"{where}: label podium.dev/uses-postgres (the NetworkPolicy opens PostgreSQL to it)")

    runtime_secrets = set()
    for svc in with_schema:
        workload = render.get(svc.kind, svc.name)
        for c in workload["spec"]["template"]["spec"]["containers"]:
            runtime = _secret_of(c, "DATABASE_URL")
            runtime_secrets.add(runtime)
            if owner is not None and runtime == owner:
                problems.append(
                    f"{render.name}: {svc.name}: DATABASE_URL is the owner's Secret {owner}: use the runtime role's"
                )
            if any(e.get("name") == "PODIUM_MIGRATE_DATABASE_URL" for e in c.get("env", [])):
                problems.append(
                    f"{render.name}: {svc.name}: only the migration Job holds the owner's credentials"
                )
    cluster = render.get("Cluster", "podium-db")
    if cluster is not None and role:
        managed = {r.get("name"): r for r in cluster["spec"].get("managed", {}).get("roles", [])}
        secret = managed.get(role, {}).get("passwordSecret", {}).get("name")
        if secret is None:
            problems.append(f"{render.name}: Cluster/podium-db must manage the role {role}")
        elif runtime_secrets != {secret}:
            problems.append(
                f"{render.name}: the services' DATABASE_URL Secrets {sorted(map(str, runtime_secrets))} "
                f"must be the role {role}'s ({secret})"
            )
    return problems


def check_migration_job(renders: list[Render]) -> list[str]:
    return [problem for render in renders for problem in _check_render(render)]
