"""python -m deploy.dashboards [--check]: writes Podium's Grafana dashboards as JSON.

One overview and one per service, into deploy/k8s/components/monitoring/dashboards/, which
the `monitoring` component ships in a ConfigMap the Grafana sidecar loads (label
`grafana_dashboard: "1"`). `--check` fails when a committed file differs from what this
writes; `python -m deploy.check monitoring` also checks every query against the metrics
the code exports.

Series carry a `service` label (the pod's `app.kubernetes.io/name`, set by the PodMonitor).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from deploy.check.catalogue import SERVICES

OUT = Path(__file__).resolve().parent / "k8s" / "components" / "monitoring" / "dashboards"
RATE = "$__rate_interval"
ERRORS = 'code=~"INTERNAL|UNKNOWN|UNAVAILABLE|DEADLINE_EXCEEDED|DATA_LOSS"'


def _panel(title: str, targets: list[tuple[str, str]], unit: str = "short", description: str = "") -> dict:
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def _grpc(selector: str) -> list[dict]:
    return [
        _panel(
            "gRPC calls by status",
            [(f"sum by (code) (rate(podium_grpc_requests_total{{{selector}}}[{RATE}]))", "{{code}}")],
            "reqps",
        ),
        _panel(
            "Server errors (share of calls)",
            [
                (
                    f"sum(rate(podium_grpc_requests_total{{{selector},{ERRORS}}}[{RATE}]))"
                    f" / sum(rate(podium_grpc_requests_total{{{selector}}}[{RATE}]))",
                    "errors",
                )
            ],
            "percentunit",
        ),
        _panel(
            "p99 latency by method",
            [
                (
                    "histogram_quantile(0.99, sum by (le, method) "
                    f"(rate(podium_grpc_request_seconds_bucket{{{selector}}}[{RATE}])))",
                    "{{method}}",
                )
            ],
            "s",
        ),
    ]


def _log(selector: str, outbox: bool) -> list[dict]:
    panels = [
        _panel(
            "Projection lag (records)",
            [(f"max by (projection) (podium_projection_lag_records{{{selector}}})", "{{projection}}")],
        ),
        _panel(
            "Projections not caught up",
            [(f"count by (projection) (podium_projection_caught_up{{{selector}}} == 0)", "{{projection}}")],
        ),
        _panel(
            "Dead letters",
            [
                (
                    f"sum by (consumer) (increase(podium_dead_letters_total{{{selector}}}[{RATE}]))",
                    "{{consumer}}",
                )
            ],
        ),
        _panel(
            "Lost log (partitions)",
            [(f"sum by (consumer, topic) (podium_log_lost{{{selector}}})", "{{consumer}} {{topic}}")],
        ),
    ]
    if outbox:
        panels[:0] = [
            _panel(
                "Outbox backlog",
                [(f"max by (schema) (podium_outbox_backlog{{{selector}}})", "{{schema}}")],
                description="Events committed in PostgreSQL, not yet on the broker (one relay publishes).",
            ),
            _panel(
                "Outbox published",
                [
                    (
                        f"sum by (schema) (rate(podium_outbox_published_total{{{selector}}}[{RATE}]))",
                        "{{schema}}",
                    )
                ],
                "ops",
            ),
        ]
    return panels


def _own(service: str) -> list[dict]:
    sel = f'service="{service}"'
    if service == "room":
        return [
            _panel(
                "Live Spaces",
                [("max(podium_live_spaces)", "live")],
                description="A whole-cluster figure every room replica reports alike: max(), not sum().",
            ),
            _panel("Participants by role", [("max by (role) (podium_space_participants)", "{{role}}")]),
        ]
    if service == "media-relay":
        return [
            _panel(
                "Relay frames",
                [(f"sum by (direction) (rate(podium_media_frames_total{{{sel}}}[{RATE}]))", "{{direction}}")],
                "ops",
            ),
            _panel(
                "Dropped frames by relay",
                [
                    (
                        f'sum by (pod) (rate(podium_media_frames_total{{{sel},direction="dropped"}}[{RATE}]))',
                        "{{pod}}",
                    )
                ],
                "ops",
            ),
            _panel("Spaces per relay", [(f"podium_view_cached_spaces{{{sel}}}", "{{pod}}")]),
        ]
    if service == "presence":
        return [
            _panel("Presence degraded", [(f"max(podium_presence_degraded{{{sel}}})", "degraded")]),
            _panel(
                "Spaces on the board", [(f"sum by (pod) (podium_view_cached_spaces{{{sel}}})", "{{pod}}")]
            ),
        ]
    if service == "webhooks":
        return [
            _panel(
                "Delivery attempts",
                [(f"sum by (outcome) (rate(podium_webhook_attempts_total{{{sel}}}[{RATE}]))", "{{outcome}}")],
                "ops",
            ),
            _panel(
                "Event to first POST, p99",
                [
                    (
                        "histogram_quantile(0.99, sum by (le) "
                        f"(rate(podium_webhook_event_to_post_seconds_bucket{{{sel}}}[{RATE}])))",
                        "p99",
                    )
                ],
                "s",
            ),
            _panel(
                "Events too old to deliver",
                [(f"sum(increase(podium_webhook_events_too_old_total{{{sel}}}[{RATE}]))", "too old")],
            ),
        ]
    return []


def _layout(panels: list[dict]) -> list[dict]:
    for i, panel in enumerate(panels):
        panel["id"] = i + 1
        panel["gridPos"] = {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)}
    return panels


def _dashboard(uid: str, title: str, panels: list[dict]) -> dict:
    return {
        "uid": uid,
        "title": title,
        "tags": ["podium"],
        "timezone": "utc",
        "schemaVersion": 39,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus"}
            ]
        },
        "panels": _layout(panels),
    }


def dashboards() -> dict[str, dict]:
    """File name -> dashboard."""
    every = 'service=~".+"'
    overview = [
        _panel("Live Spaces", [("max(podium_live_spaces)", "live")]),
        _panel("Participants by role", [("max by (role) (podium_space_participants)", "{{role}}")]),
        _panel(
            "gRPC calls by service",
            [(f"sum by (service) (rate(podium_grpc_requests_total[{RATE}]))", "{{service}}")],
            "reqps",
        ),
        _panel(
            "Server errors by service (share of calls)",
            [
                (
                    f"sum by (service) (rate(podium_grpc_requests_total{{{ERRORS}}}[{RATE}]))"
                    f" / sum by (service) (rate(podium_grpc_requests_total[{RATE}]))",
                    "{{service}}",
                )
            ],
            "percentunit",
        ),
        _panel("Outbox backlog", [("max by (schema) (podium_outbox_backlog)", "{{schema}}")]),
        _panel("Projection lag", [("max by (service) (podium_projection_lag_records)", "{{service}}")]),
        _panel(
            "Dead letters",
            [(f"sum by (service) (increase(podium_dead_letters_total[{RATE}]))", "{{service}}")],
        ),
        _panel("Lost log (partitions)", [(f"sum by (service) (podium_log_lost{{{every}}})", "{{service}}")]),
        _panel(
            "Relay frames dropped",
            [(f'sum(rate(podium_media_frames_total{{direction="dropped"}}[{RATE}]))', "dropped")],
            "ops",
        ),
        _panel("Presence degraded", [("max(podium_presence_degraded)", "degraded")]),
    ]
    out = {"podium-overview.json": _dashboard("podium-overview", "Podium / Overview", overview)}
    for svc in SERVICES:
        sel = f'service="{svc.name}"'
        panels = [*_own(svc.name), *_grpc(sel), *_log(sel, outbox=svc.uses_postgres)]
        out[f"podium-{svc.name}.json"] = _dashboard(f"podium-{svc.name}", f"Podium / {svc.name}", panels)
    return out


def render(dashboard: dict) -> str:
    return json.dumps(dashboard, indent=2, sort_keys=True) + "\n"


def stale(out: Path = OUT) -> list[str]:
    """Files that differ from what this module writes, or should not be there."""
    wanted = {name: render(d) for name, d in dashboards().items()}
    found = {p.name: p.read_text() for p in out.glob("*.json")} if out.is_dir() else {}
    problems = [
        f"{out.name}/{n}: out of date (python -m deploy.dashboards)"
        for n in wanted
        if found.get(n) != wanted[n]
    ]
    problems += [f"{out.name}/{n}: not a generated dashboard" for n in sorted(set(found) - set(wanted))]
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="fail if the committed files are out of date")
    args = parser.parse_args()
    if args.check:
        problems = stale()
        print("\n".join(problems) or "dashboards are current")
        sys.exit(1 if problems else 0)
    OUT.mkdir(parents=True, exist_ok=True)
    for name, dashboard in dashboards().items():
        (OUT / name).write_text(render(dashboard))
    print(f"wrote {len(dashboards())} dashboards to {OUT}")


if __name__ == "__main__":
    main()
