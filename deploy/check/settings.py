"""Each service's settings class accepts the environment its manifest gives it.

For every service in the overlays, the environment is assembled as Kubernetes would
(its ConfigMaps, literal values, `$(VAR)` references, Secrets and the ConfigMaps the
operator creates replaced by stand-ins, the pod name for fieldRefs) and the service's
own settings class (`services.<module>.settings`) is built from it: a value it rejects
(a relay ring that does not parse, an unknown event loop) fails. So does a PODIUM_*
variable that no setting reads: a typo would otherwise be silently ignored.

Where the environment says PODIUM_ENV=production, the settings must also pass the
production check the service runs at start (`production_problems()`, docs/security.md):
a manifest that would make the service refuse to start fails here first. overlays/prod
must say production.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
from contextlib import contextmanager

from pydantic import AliasChoices, ValidationError
from pydantic_settings import BaseSettings

from deploy.check.catalogue import SERVICES, DeployedService
from deploy.check.render import Render

SECRET_STAND_INS = {
    "DATABASE_URL": "postgresql://podium:stand-in@podium-db-rw:5432/podium",
    "PODIUM_JWT_SECRET": "stand-in-secret-of-a-decent-length-0123456789",
}
# ConfigMaps the operator creates (overlays/prod says which): (name, key) -> a stand-in value.
OPERATOR_CONFIG_STAND_INS = {
    ("podium-site", "invite-link-base-url"): "https://spaces.stand-in-for-your-domain.net/i/",
    (
        "podium-site",
        "ice-servers",
    ): '[{"urls": ["turn:turn.stand-in-for-your-domain.net:3478?transport=udp"]}]',
}
PRODUCTION_OVERLAY = "overlays/prod"


def settings_class(svc: DeployedService) -> type[BaseSettings]:
    module = importlib.import_module(f"{svc.module}.settings")
    classes = [
        c
        for _, c in inspect.getmembers(module, inspect.isclass)
        if issubclass(c, BaseSettings) and c.__module__ == module.__name__
    ]
    if len(classes) != 1:
        raise LookupError(f"{module.__name__} should define one settings class, found {classes}")
    return classes[0]


def env_names(cls: type[BaseSettings]) -> set[str]:
    prefix = cls.model_config.get("env_prefix", "")
    names = set()
    for name, field in cls.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {c for c in alias.choices if isinstance(c, str)}
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(f"{prefix}{name}".upper())
    return names


def _config_value(render: Render, ref: dict) -> str | None:
    cm = render.get("ConfigMap", ref.get("name", ""))
    if cm is not None:
        return cm.get("data", {}).get(ref.get("key", ""))
    return OPERATOR_CONFIG_STAND_INS.get((ref.get("name", ""), ref.get("key", "")))


def pod_environment(render: Render, svc: DeployedService) -> dict[str, str]:
    """The container's environment as Kubernetes assembles it; a configMapKeyRef to a ConfigMap
    neither rendered nor known to be the operator's is left out (check_settings says so)."""
    workload = render.get(svc.kind, svc.name)
    if workload is None:
        return {}
    container = workload["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for ref in container.get("envFrom", []):
        cm = render.get("ConfigMap", ref.get("configMapRef", {}).get("name", ""))
        env.update((cm or {}).get("data", {}))
    for item in container.get("env", []):
        source = item.get("valueFrom", {})
        if "value" in item:
            # $(NAME) refers to a variable defined earlier in the list (or from envFrom).
            env[item["name"]] = re.sub(
                r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), item["value"]
            )
        elif "secretKeyRef" in source:
            env[item["name"]] = SECRET_STAND_INS.get(item["name"], "stand-in")
        elif "configMapKeyRef" in source:
            value = _config_value(render, source["configMapKeyRef"])
            if value is not None:
                env[item["name"]] = value
        elif "fieldRef" in source:
            env[item["name"]] = f"{svc.name}-0"
    return env


def _unresolved_config_refs(render: Render, svc: DeployedService) -> list[str]:
    workload = render.get(svc.kind, svc.name)
    container = workload["spec"]["template"]["spec"]["containers"][0]
    return [
        f"{item['name']} refers to ConfigMap {ref.get('name')} key {ref.get('key')}, which is neither "
        "rendered nor one the operator creates (deploy/check/settings.py OPERATOR_CONFIG_STAND_INS)"
        for item in container.get("env", [])
        if (ref := item.get("valueFrom", {}).get("configMapKeyRef")) is not None
        and _config_value(render, ref) is None
    ]


@contextmanager
def _environment(env: dict[str, str]):
    saved = dict(os.environ)
    try:
        for key in [k for k in os.environ if k.startswith(("PODIUM_", "OTEL_")) or k in SECRET_STAND_INS]:
            del os.environ[key]
        os.environ.pop("KAFKA_BOOTSTRAP_SERVERS", None)
        os.environ.update(env)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def check_settings(renders: list[Render]) -> list[str]:
    problems = []
    for render in renders:
        if not render.name.startswith("overlays/"):
            continue
        for svc in SERVICES:
            env = pod_environment(render, svc)
            if not env:
                continue
            where = f"{render.name}: {svc.name}"
            try:
                cls = settings_class(svc)
            except (ImportError, LookupError) as e:
                problems.append(f"{where}: cannot load its settings class: {e}")
                continue
            known = env_names(cls)
            problems += [f"{where}: {p}" for p in _unresolved_config_refs(render, svc)]
            for key in sorted(k for k in env if k.startswith("PODIUM_")):
                if key not in known:
                    problems.append(f"{where}: {key} is read by no setting of {cls.__name__} (a typo?)")
            if render.name == PRODUCTION_OVERLAY and env.get("PODIUM_ENV") != "production":
                problems.append(f"{where}: PODIUM_ENV must be production in {PRODUCTION_OVERLAY}")
            with _environment(env):
                try:
                    settings = cls()
                except ValidationError as e:
                    for error in e.errors():
                        field = ".".join(map(str, error["loc"]))
                        problems.append(f"{where}: {cls.__name__}.{field}: {error['msg']}")
                    continue
            if settings.env == "production":
                problems += [f"{where}: production mode: {p}" for p in settings.production_problems()]
    return problems
