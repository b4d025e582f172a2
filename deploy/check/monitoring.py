"""Monitoring that works when applied: it scrapes every service, and names only real metrics.

Every alert's PromQL and every Grafana panel's query must read only metrics the code
exports. The exported names come from the code itself: libs/telemetry/metrics.py is
imported and prometheus_client's registry lists its families, each expanded to the
series Prometheus stores (a counter `x` is `x_total`, a histogram `x_bucket`, `x_sum`,
`x_count`). A whole-cluster gauge (`CLUSTER_WIDE`, which every room replica reports
alike) must be aggregated with max, min or avg, never summed. The PodMonitor must select
every service by name and scrape the container port `metrics`, which every workload
declares on PODIUM_METRICS_PORT. The dashboards are what `python -m deploy.dashboards` writes.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from deploy.check.catalogue import SERVICES
from deploy.check.promql import PromQLError, metric_uses
from deploy.check.render import Render

ROOT = Path(__file__).resolve().parents[2]
METRICS_MODULE = "libs/telemetry/metrics.py"
# What each metric family type is stored as in Prometheus.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "enum": ("",),
}
FOR_A_WHOLE_CLUSTER = {"max", "min", "avg"}


@cache
def exported() -> tuple[frozenset[str], frozenset[str]]:
    """(the series names the code exports, the whole-cluster ones among them)."""
    from prometheus_client import REGISTRY

    from libs.telemetry import metrics

    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("podium_"):
            names |= {family.name + suffix for suffix in SUFFIXES[family.type]}
    return frozenset(names), frozenset(metrics.CLUSTER_WIDE)


def metrics_defined_elsewhere(root: Path = ROOT) -> list[str]:
    """Shipped modules other than libs/telemetry/metrics.py that import prometheus_client: their
    metrics would escape the registry this check reads (it imports only that module)."""
    problems = []
    for folder in ("libs", "services", "cli"):
        for path in sorted((root / folder).rglob("*.py")):
            if path.relative_to(root).as_posix() == METRICS_MODULE:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                modules = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                if any(m.split(".")[0] == "prometheus_client" for m in modules):
                    problems.append(
                        f"{path.relative_to(root)}: imports prometheus_client; define metrics in {METRICS_MODULE}"
                    )
    return problems


def check_query(expr: str) -> list[str]:
    """What is wrong with one PromQL expression, against the exported metrics."""
    names, cluster_wide = exported()
    try:
        uses = metric_uses(expr)
    except PromQLError as e:
        return [str(e)]
    problems = []
    if not any(u.name.startswith("podium_") for u in uses):
        problems.append("reads no Podium metric")
    for use in uses:
        if use.name not in names:
            problems.append(f"names {use.name}, which the code does not export")
        elif use.name in cluster_wide and use.aggregation not in FOR_A_WHOLE_CLUSTER:
            problems.append(
                f"{use.name} is the same whole-cluster figure on every room replica: "
                f"aggregate it with max(), not {use.aggregation or 'per replica'}"
            )
    return problems


@dataclass
class Inventory:
    alerts: int = 0
    panels: int = 0
    queries: int = 0


def _dashboards(render: Render) -> dict[str, str]:
    return {
        key: text
        for cm in render.of_kind("ConfigMap")
        if cm["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
        for key, text in cm.get("data", {}).items()
    }


def check_render(render: Render, inventory: Inventory | None = None) -> list[str]:
    inventory = inventory if inventory is not None else Inventory()
    problems = []
    for rule_doc in render.of_kind("PrometheusRule"):
        for group in rule_doc["spec"].get("groups", []):
            for rule in group.get("rules", []):
                name = rule.get("alert") or rule.get("record")
                inventory.alerts += 1 if "alert" in rule else 0
                problems += [
                    f"{render.name}: PrometheusRule {rule_doc['metadata']['name']}, {name}: {p}"
                    for p in check_query(str(rule.get("expr", "")))
                ]
    dashboards = _dashboards(render)
    if dashboards:
        wanted = {"podium-overview.json", *(f"podium-{s.name}.json" for s in SERVICES)}
        problems += [f"{render.name}: no Grafana dashboard {n}" for n in sorted(wanted - set(dashboards))]
    for key, text in dashboards.items():
        try:
            dashboard = json.loads(text)
        except json.JSONDecodeError as e:
            problems.append(f"{render.name}: dashboard {key} is not JSON: {e}")
            continue
        if not dashboard.get("uid") or not dashboard.get("title") or not dashboard.get("panels"):
            problems.append(f"{render.name}: dashboard {key} needs a uid, a title and panels")
        for panel in dashboard.get("panels", []):
            inventory.panels += 1
            targets = panel.get("targets", [])
            if not targets:
                problems.append(f"{render.name}: dashboard {key}, panel {panel.get('title')!r} has no query")
            for target in targets:
                inventory.queries += 1
                problems += [
                    f"{render.name}: dashboard {key}, panel {panel.get('title')!r}: {p}"
                    for p in check_query(str(target.get("expr", "")))
                ]
    for monitor in render.of_kind("PodMonitor"):
        problems += _check_pod_monitor(render, monitor)
    return problems


def _check_pod_monitor(render: Render, monitor: dict) -> list[str]:
    where = f"{render.name}: PodMonitor {monitor['metadata']['name']}"
    problems = []
    selector = monitor["spec"].get("selector", {})
    expressions = selector.get("matchExpressions", [])
    selected = {
        v
        for e in expressions
        if e.get("key") == "app.kubernetes.io/name" and e.get("operator") == "In"
        for v in e.get("values", [])
    }
    wanted = {s.name for s in SERVICES}
    if selected != wanted or selector.get("matchLabels"):
        problems.append(f"{where}: selects {sorted(selected)}, want exactly the services {sorted(wanted)}")
    ports = {e.get("port") for e in monitor["spec"].get("podMetricsEndpoints", [])}
    if ports != {"metrics"}:
        problems.append(f"{where}: scrapes ports {sorted(map(str, ports))}, want the port named metrics")
    common = render.get("ConfigMap", "podium-common") or {}
    port = int(common.get("data", {}).get("PODIUM_METRICS_PORT", "-1"))
    for svc in SERVICES:
        workload = render.get(svc.kind, svc.name)
        if workload is None:
            continue
        container = workload["spec"]["template"]["spec"]["containers"][0]
        declared = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
        if declared.get("metrics") != port:
            problems.append(
                f"{where}: {svc.kind}/{svc.name} declares metrics port {declared.get('metrics')}, "
                f"but serves PODIUM_METRICS_PORT {port}"
            )
    return problems


def inventory(renders: list[Render]) -> Inventory:
    """What the production overlay ships: alerts, panels, queries (all validated)."""
    counted = Inventory()
    for render in renders:
        if render.name == "overlays/prod":
            check_render(render, counted)
    return counted


def check_monitoring(renders: list[Render], root: Path = ROOT) -> list[str]:
    from deploy.dashboards import stale

    problems = metrics_defined_elsewhere(root) + stale()
    if not any(r.of_kind("PrometheusRule") for r in renders):
        problems.append("no render has a PrometheusRule (components/monitoring)")
    for render in renders:
        problems += check_render(render)
    return problems
