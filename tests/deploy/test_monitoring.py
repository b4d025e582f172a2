"""The monitoring component names only metrics the code exports, scrapes every service, and is
reachable under the network policies; each check fails on a manifest broken on purpose."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from deploy import dashboards
from deploy.check import manifests
from deploy.check.monitoring import check_monitoring, check_query, check_render, exported
from deploy.check.promql import metric_names, metric_uses
from deploy.check.render import Render

COMPONENT = Path(__file__).resolve().parents[2] / "deploy/k8s/components/monitoring"


def _rules() -> dict:
    return yaml.safe_load((COMPONENT / "rules.yaml").read_text())


def test_the_committed_monitoring_passes(renders):
    assert check_monitoring(renders) == []


def test_the_exported_names_come_from_the_registry_with_prometheus_suffixes():
    names, cluster_wide = exported()
    assert {
        "podium_grpc_requests_total",
        "podium_grpc_request_seconds_bucket",
        "podium_outbox_backlog",
    } <= names
    assert "podium_grpc_requests" not in names  # a counter is stored as _total
    assert "podium_live_spaces" in cluster_wide


def test_promql_metric_names_skip_functions_labels_and_ranges():
    expr = (
        'histogram_quantile(0.99, sum by (le, method) (rate(podium_grpc_request_seconds_bucket{method!~"a|b"}[5m])))'
        " > 0.5 and on (namespace) max without (pod) (podium_outbox_backlog offset 1h) > bool 3"
    )
    assert metric_names(expr) == {"podium_grpc_request_seconds_bucket", "podium_outbox_backlog"}
    assert [u.aggregation for u in metric_uses("max(rate(podium_live_spaces[5m])) / sum(x)")] == [
        "max",
        "sum",
    ]


def test_an_alert_naming_a_metric_the_code_does_not_export_fails():
    rules = _rules()
    rules["spec"]["groups"][0]["rules"][0]["expr"] = "max(podium_outbox_backlogs) > 1000"
    problems = check_render(Render("t", [rules]))
    assert any("podium_outbox_backlogs, which the code does not export" in p for p in problems), problems


def test_an_alert_on_a_counter_without_its_total_suffix_fails():
    assert any(
        "podium_dead_letters, which" in p for p in check_query("increase(podium_dead_letters[5m]) > 0")
    )


def test_summing_a_whole_cluster_gauge_over_replicas_fails():
    assert any("aggregate it with max()" in p for p in check_query("sum(podium_live_spaces) > 10"))
    assert any("aggregate it with max()" in p for p in check_query("podium_live_spaces > 10"))
    assert check_query("max(podium_live_spaces) > 10") == []


def test_a_dashboard_query_naming_an_unknown_metric_fails():
    board = dashboards.dashboards()["podium-room.json"]
    board["panels"][0]["targets"][0]["expr"] = "rate(podium_rooms_total[5m])"
    cm = {
        "kind": "ConfigMap",
        "metadata": {"name": "d", "labels": {"grafana_dashboard": "1"}},
        "data": {"podium-room.json": json.dumps(board)},
    }
    problems = check_render(Render("t", [cm]))
    assert any("podium_rooms_total, which the code does not export" in p for p in problems), problems


def test_a_pod_monitor_missing_a_service_fails(renders):
    prod = next(r for r in renders if r.name == "overlays/prod")
    broken = copy.deepcopy(prod)
    monitor = next(d for d in broken.docs if d["kind"] == "PodMonitor")
    monitor["spec"]["selector"]["matchExpressions"][0]["values"].remove("webhooks")
    assert any("want exactly the services" in p for p in check_render(broken))


def test_the_default_deny_without_a_way_in_for_prometheus_fails(renders):
    prod = next(r for r in renders if r.name == "overlays/prod")
    broken = Render(
        prod.name, [d for d in prod.docs if d["metadata"]["name"] != "podium-metrics-from-prometheus"]
    )
    assert any("admits Prometheus" in p for p in manifests.check_network_policies([broken]))


@pytest.mark.parametrize("name", sorted(dashboards.dashboards()))
def test_each_dashboard_is_current(name):
    assert (COMPONENT / "dashboards" / name).read_text() == dashboards.render(dashboards.dashboards()[name])
