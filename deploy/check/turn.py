"""TURN (components/turn): coturn reachable on 3478, its relay reachable from the gateways only,
and coturn and the gateway sharing one secret that no manifest holds.

Where a render has the coturn Deployment:
- the `turn` Service is a LoadBalancer with 3478 over UDP and TCP, and nothing else;
- coturn relays from exactly RELAY_PORTS, authenticates with REST credentials
  (--use-auth-secret) and takes its static-auth-secret from the Secret the gateway reads too;
- its NetworkPolicy lets anyone reach 3478 and only pods labelled podium.dev/gateway=true
  reach the relay ports; no other rule opens them;
- the gateway reads PODIUM_GATEWAY_TURN_SECRET from that Secret and PODIUM_GATEWAY_ICE_SERVERS
  from the operator's ConfigMap.
overlays/prod must have it: browsers behind NAT cannot be heard without it.
"""

from __future__ import annotations

from deploy.check.render import Render

TURN_PORT = 3478
RELAY_PORTS = (49152, 49407)
SECRET = ("podium-turn", "static-auth-secret")
ICE_SERVERS = ("podium-site", "ice-servers")
GATEWAY_SELECTOR = {"podium.dev/gateway": "true"}
PRODUCTION_OVERLAY = "overlays/prod"


def _arg(args: list[str], name: str) -> str | None:
    return next((a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")), None)


def _secret_ref(container: dict, name: str) -> tuple[str, str] | None:
    for item in container.get("env", []):
        if item["name"] == name:
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            return (ref["name"], ref["key"]) if ref else None
    return None


def _opens_relay(port: dict) -> bool:
    if port.get("protocol", "TCP") != "UDP" or "port" not in port:
        return "port" not in port  # a rule without ports opens every port
    low, high = port["port"], port.get("endPort", port["port"])
    return isinstance(low, int) and low <= RELAY_PORTS[1] and high >= RELAY_PORTS[0]


def _check_service(render: Render) -> list[str]:
    service = render.get("Service", "turn")
    if service is None:
        return [f"{render.name}: no Service turn in front of coturn"]
    problems = []
    if service["spec"].get("type") != "LoadBalancer":
        problems.append(
            f"{render.name}: Service turn must be a LoadBalancer (browsers reach it from outside)"
        )
    ports = {(p.get("protocol", "TCP"), p["port"]) for p in service["spec"].get("ports", [])}
    if ports != {("UDP", TURN_PORT), ("TCP", TURN_PORT)}:
        problems.append(
            f"{render.name}: Service turn must expose {TURN_PORT} over UDP and TCP only, has {sorted(ports)}"
        )
    return problems


def _check_coturn(render: Render, coturn: dict) -> list[str]:
    container = coturn["spec"]["template"]["spec"]["containers"][0]
    args = container.get("args", [])
    where = f"{render.name}: coturn"
    problems = []
    relay = (_arg(args, "min-port"), _arg(args, "max-port"))
    if relay != tuple(str(p) for p in RELAY_PORTS):
        problems.append(f"{where}: relay ports {relay}, expected {RELAY_PORTS} (the NetworkPolicy's range)")
    if "--use-auth-secret" not in args:
        problems.append(f"{where}: --use-auth-secret is missing: it must take the gateway's REST credentials")
    secret_arg = _arg(args, "static-auth-secret")
    if secret_arg is None or not secret_arg.startswith("$("):
        problems.append(
            f"{where}: --static-auth-secret must come from the Secret (as $(VAR)), not the manifest"
        )
    elif _secret_ref(container, secret_arg[2:-1]) != SECRET:
        problems.append(f"{where}: {secret_arg} must be read from Secret {SECRET[0]} key {SECRET[1]}")
    return problems


def _check_policy(render: Render) -> list[str]:
    policies = [
        p
        for p in render.of_kind("NetworkPolicy")
        if p["spec"].get("podSelector", {}).get("matchLabels") == {"app.kubernetes.io/name": "coturn"}
    ]
    if not policies:
        return [f"{render.name}: no NetworkPolicy selects coturn: its relay ports would be open to every pod"]
    problems = []
    if not any("Ingress" in p["spec"].get("policyTypes", []) for p in policies):
        problems.append(f"{render.name}: coturn's NetworkPolicy must govern Ingress")
    relay_from_gateways = False
    turn_open = False
    for rule in (r for p in policies for r in p["spec"].get("ingress", [])):
        ports = rule.get("ports") or [{}]
        sources = rule.get("from", [])
        if any(p.get("port") == TURN_PORT for p in ports) and not sources:
            turn_open = True
        if not any(_opens_relay(p) for p in ports):
            continue
        only_gateways = bool(sources) and all(
            set(s) == {"podSelector"} and s["podSelector"].get("matchLabels") == GATEWAY_SELECTOR
            for s in sources
        )
        if not only_gateways:
            problems.append(
                f"{render.name}: a coturn ingress rule opens the relay ports {RELAY_PORTS} to {sources or 'anyone'}: "
                "only the gateway pods (podium.dev/gateway=true, this namespace) may reach them"
            )
        elif all(
            p.get("protocol") == "UDP" and (p.get("port"), p.get("endPort")) == RELAY_PORTS for p in ports
        ):
            relay_from_gateways = True
    if not turn_open:
        problems.append(f"{render.name}: coturn's NetworkPolicy must let browsers reach {TURN_PORT}")
    if not relay_from_gateways:
        problems.append(
            f"{render.name}: coturn's NetworkPolicy must let the gateways reach UDP {RELAY_PORTS}"
        )
    return problems


def _check_gateway(render: Render) -> list[str]:
    gateway = render.get("Deployment", "gateway")
    if gateway is None:
        return []
    container = gateway["spec"]["template"]["spec"]["containers"][0]
    problems = []
    if _secret_ref(container, "PODIUM_GATEWAY_TURN_SECRET") != SECRET:
        problems.append(
            f"{render.name}: gateway must read PODIUM_GATEWAY_TURN_SECRET from Secret {SECRET[0]} key {SECRET[1]}, "
            "coturn's static-auth-secret"
        )
    ice = next((i for i in container.get("env", []) if i["name"] == "PODIUM_GATEWAY_ICE_SERVERS"), None)
    ref = (ice or {}).get("valueFrom", {}).get("configMapKeyRef") or {}
    if (ref.get("name"), ref.get("key")) != ICE_SERVERS:
        problems.append(
            f"{render.name}: gateway must read PODIUM_GATEWAY_ICE_SERVERS from ConfigMap {ICE_SERVERS[0]} "
            f"key {ICE_SERVERS[1]} (the operator names the LoadBalancer's address there)"
        )
    return problems


def check_turn(renders: list[Render]) -> list[str]:
    problems = []
    for render in renders:
        coturn = render.get("Deployment", "coturn")
        if coturn is None:
            if render.name == PRODUCTION_OVERLAY:
                problems.append(
                    f"{render.name}: no TURN server (components/turn): browsers behind NAT go unheard"
                )
            continue
        problems += _check_service(render)
        problems += _check_coturn(render, coturn)
        problems += _check_policy(render)
        problems += _check_gateway(render)
    return problems
