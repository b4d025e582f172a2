"""Evaluates the Tiltfile as Starlark with Tilt's built-ins stubbed, and checks what it names.

The stubs record every call. Then: the version is pinned and the contexts guarded;
codegen is a local_resource; the dev overlay is what k8s_yaml gets; every service
has a docker_build (with live_update that syncs source, re-runs the install only on
pyproject.toml, and restarts the process) whose image and entrypoint are the ones its
manifest uses; every resource, object and port forward exists in the dev render;
services wait for Kafka and PostgreSQL; there is a test resource and a manual demo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import starlark

from deploy.check.catalogue import SERVICES
from deploy.check.render import Render

DEV_OVERLAY = "deploy/k8s/overlays/dev"
MIGRATION_JOB = "podium-migrate"

# Tilt's built-ins that the Tiltfile may call; any other name fails evaluation.
BUILTINS = (
    "version_settings",
    "allow_k8s_contexts",
    "update_settings",
    "local_resource",
    "k8s_yaml",
    "kustomize",
    "k8s_resource",
    "docker_build",
    "port_forward",
    "sync",
    "run",
    "fall_back_on",
    "fail",
    "print",
)
CONSTANTS = {"TRIGGER_MODE_MANUAL": "TRIGGER_MODE_MANUAL", "TRIGGER_MODE_AUTO": "TRIGGER_MODE_AUTO"}
EXTENSIONS = {"ext://restart_process": ("docker_build_with_restart",)}


@dataclass
class Call:
    name: str
    args: list
    kwargs: dict

    def arg(self, index: int, keyword: str, default=None):
        if len(self.args) > index:
            return self.args[index]
        return self.kwargs.get(keyword, default)


@dataclass
class TiltRecord:
    calls: list[Call] = field(default_factory=list)

    def of(self, *names: str) -> list[Call]:
        return [c for c in self.calls if c.name in names]


def evaluate(path: Path) -> TiltRecord:
    """Runs the Tiltfile; raises starlark.StarlarkError if it is not valid Starlark or calls an unknown name."""
    record = TiltRecord()

    def stub(name: str):
        def call(*args, **kwargs):
            if name == "fail":
                raise RuntimeError(f"the Tiltfile calls fail({args[0] if args else ''!r})")
            record.calls.append(Call(name, list(args), dict(kwargs)))
            return {"tilt": name, "args": list(args), "kwargs": dict(kwargs)}

        return call

    def load(module: str):
        if module not in EXTENSIONS:
            raise starlark.StarlarkError(f"unknown extension {module}")
        ext = starlark.Module()
        for name in EXTENSIONS[module]:
            ext.add_callable(name, stub(name))
        return ext.freeze()

    module = starlark.Module()
    for name in BUILTINS:
        module.add_callable(name, stub(name))
    for name, value in CONSTANTS.items():
        module[name] = value
    ast = starlark.parse(path.name, path.read_text(), starlark.Dialect.standard())
    starlark.eval(module, ast, starlark.Globals.standard(), starlark.FileLoader(load))
    return record


def _containers(render: Render) -> dict[str, dict]:
    """Workload name -> its first container, for the dev render's Deployments, StatefulSets and Jobs
    (the migration Job)."""
    return {
        w["metadata"]["name"]: w["spec"]["template"]["spec"]["containers"][0]
        for w in render.of_kind("Deployment", "StatefulSet", "Job")
    }


def check_tiltfile(path: Path, dev: Render) -> list[str]:
    try:
        record = evaluate(path)
    except Exception as e:  # a syntax error, an unknown built-in, fail(): all are failures
        return [f"{path.name}: does not evaluate: {e}"]
    problems = []
    versions = record.of("version_settings")
    if not versions or not versions[0].arg(1, "constraint"):
        problems.append("version_settings(constraint=...) must pin Tilt's version")
    contexts = record.of("allow_k8s_contexts")
    if not contexts or not contexts[0].arg(0, "contexts"):
        problems.append("allow_k8s_contexts([...]) must guard against non-local clusters")
    kustomized = [c.arg(0, "pathToDir") for c in record.of("kustomize")]
    yamls = record.of("k8s_yaml")
    if kustomized != [DEV_OVERLAY] or len(yamls) != 1 or yamls[0].args[0].get("tilt") != "kustomize":
        problems.append(f"k8s_yaml(kustomize({DEV_OVERLAY!r})) must be the only manifests")

    locals_ = {c.arg(0, "name"): c for c in record.of("local_resource")}
    if "codegen" not in locals_ or "libs.contracts.codegen" not in str(locals_["codegen"].arg(1, "cmd")):
        problems.append("a local_resource named codegen must run python -m libs.contracts.codegen")
    if not any("pytest" in str(c.arg(1, "cmd")) for c in locals_.values()):
        problems.append("a local_resource must run the tests (pytest)")
    demo = [c for c in locals_.values() if "podium demo" in str(c.arg(1, "cmd"))]
    if not demo or demo[0].kwargs.get("trigger_mode") != "TRIGGER_MODE_MANUAL":
        problems.append("the demo (podium demo) must be a manual local_resource")

    containers = _containers(dev)
    builds = {c.arg(0, "ref"): c for c in record.of("docker_build", "docker_build_with_restart")}
    resources = {c.arg(0, "workload") or c.kwargs.get("new_name"): c for c in record.of("k8s_resource")}
    names_in_dev = {(d["metadata"]["name"], d["kind"].lower()) for d in dev.docs}

    for svc in SERVICES:
        image = f"podium-{svc.name}"
        build = builds.get(image)
        if build is None:
            problems.append(f"no docker_build for {image} (service {svc.name})")
            continue
        container = containers.get(svc.name)
        if container is not None and container.get("image") != image:
            problems.append(f"{svc.name}: runs {container.get('image')}, not the image Tilt builds ({image})")
        entry = build.kwargs.get("entrypoint")
        if entry != ["python", "-m", svc.module] or (container and container.get("command") != entry):
            problems.append(f"docker_build {image}: entrypoint {entry} must be the manifest's command")
        if build.name != "docker_build_with_restart":
            problems.append(
                f"docker_build {image}: use docker_build_with_restart so live updates restart the process"
            )
        steps = build.kwargs.get("live_update", [])
        syncs = {s["args"][0].removeprefix("./") for s in steps if s.get("tilt") == "sync"}
        for source in ("libs", "services"):
            if source not in syncs:
                problems.append(f"docker_build {image}: live_update must sync ./{source}")
        runs = [s for s in steps if s.get("tilt") == "run"]
        if not runs or any(
            [t.removeprefix("./") for t in r["kwargs"].get("trigger", [])] != ["pyproject.toml"] for r in runs
        ):
            problems.append(
                f"docker_build {image}: live_update must re-run the install only when pyproject.toml changes"
            )

        resource = resources.get(svc.name)
        if resource is None:
            problems.append(f"no k8s_resource for {svc.name}")
            continue
        deps = resource.kwargs.get("resource_deps", [])
        for infra in ("kafka", "postgres", MIGRATION_JOB):  # services refuse an unmigrated schema
            if infra not in deps:
                problems.append(f"k8s_resource {svc.name}: resource_deps must include {infra}")
        if not resource.kwargs.get("labels"):
            problems.append(f"k8s_resource {svc.name}: give it labels")

    images_in_dev = {c.get("image") for c in containers.values()}
    for ref in builds:
        if ref not in images_in_dev:
            problems.append(f"docker_build {ref}: no workload in {DEV_OVERLAY} runs that image")
    for name, resource in resources.items():
        if resource.kwargs.get("new_name"):
            for obj in resource.kwargs.get("objects", []):
                obj_name, _, kind = obj.partition(":")
                if (obj_name, kind.lower()) not in names_in_dev:
                    problems.append(f"k8s_resource {name}: object {obj} is not in {DEV_OVERLAY}")
            continue
        if name not in containers:
            problems.append(f"k8s_resource {name}: no such workload in {DEV_OVERLAY}")
            continue
        ports = {p["containerPort"] for p in containers[name].get("ports", [])}
        for forward in resource.kwargs.get("port_forwards", []):
            container_port = forward["args"][1] if len(forward["args"]) > 1 else forward["args"][0]
            if container_port not in ports:
                problems.append(
                    f"k8s_resource {name}: forwards port {container_port}, the container has {sorted(ports)}"
                )
        svc = next((s for s in SERVICES if s.name == name), None)
        if svc and not any(
            (f["args"][1] if len(f["args"]) > 1 else f["args"][0]) == svc.port
            for f in resource.kwargs.get("port_forwards", [])
        ):
            problems.append(f"k8s_resource {name}: forward its gRPC port {svc.port}")
    grouped = {
        "kafka": ("Kafka", "KafkaNodePool", "KafkaTopic"),
        "postgres": ("Cluster",),
    }
    for infra, kinds in grouped.items():
        if infra not in resources:
            problems.append(f"no k8s_resource named {infra} (services wait for it)")
            continue
        listed = {o.lower() for o in resources[infra].kwargs.get("objects", [])}
        for doc in dev.of_kind(*kinds):
            obj = f"{doc['metadata']['name']}:{doc['kind']}".lower()
            if obj not in listed:
                problems.append(
                    f"k8s_resource {infra}: add {obj} to its objects, or services won't wait for it"
                )
    for dep_owner in [*resources.values(), *locals_.values()]:
        for dep in dep_owner.kwargs.get("resource_deps", []):
            if dep not in resources and dep not in locals_:
                problems.append(f"resource_deps names {dep!r}, which is no resource")
    return problems
