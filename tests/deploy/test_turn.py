"""TURN in production (components/turn): coturn on 3478 behind a LoadBalancer, its relay ports open to
the gateways only, and one shared secret, coturn's and the gateway's, that no manifest holds."""

from __future__ import annotations

from pathlib import Path

from deploy.check import manifests
from deploy.check.catalogue import SERVICES
from deploy.check.settings import check_settings, pod_environment
from deploy.check.turn import RELAY_PORTS, check_turn
from services.gateway.settings import GatewaySettings
from tests.deploy.conftest import edit, render

PROD = "overlays/prod"
COTURN = "deploy/k8s/components/turn/coturn.yaml"


def prod_of(renders):
    return next(r for r in renders if r.name == PROD)


def test_the_committed_manifests_pass(renders):
    assert check_turn(renders) == []
    assert any(r.name == "base+turn" for r in renders)  # rendered on its own too


def test_prod_exposes_3478_over_udp_and_tcp_through_a_load_balancer(renders):
    service = prod_of(renders).get("Service", "turn")
    assert service["spec"]["type"] == "LoadBalancer"
    assert {(p["protocol"], p["port"]) for p in service["spec"]["ports"]} == {("UDP", 3478), ("TCP", 3478)}
    coturn = prod_of(renders).get("Deployment", "coturn")["spec"]["template"]["spec"]["containers"][0]
    assert {"--min-port=49152", "--max-port=49407", "--use-auth-secret"} <= set(coturn["args"])


def test_the_relay_ports_are_reachable_from_the_gateway_pods_only(renders):
    prod = prod_of(renders)
    policy = prod.get("NetworkPolicy", "coturn")
    assert policy["metadata"]["namespace"] == "podium"
    relay_rules = [
        r for r in policy["spec"]["ingress"] if any(p.get("endPort") == RELAY_PORTS[1] for p in r["ports"])
    ]
    assert relay_rules == [
        {
            "from": [{"podSelector": {"matchLabels": {"podium.dev/gateway": "true"}}}],
            "ports": [{"protocol": "UDP", "port": RELAY_PORTS[0], "endPort": RELAY_PORTS[1]}],
        }
    ]
    # The only rule without sources is the TURN port's.
    open_rules = [r for r in policy["spec"]["ingress"] if not r.get("from")]
    assert [{p["port"] for p in r["ports"]} for r in open_rules] == [{3478}]
    # The gateways' own pods carry the label the rule names.
    gateway = prod.get("Deployment", "gateway")["spec"]["template"]["metadata"]["labels"]
    assert gateway["podium.dev/gateway"] == "true"


def test_coturn_and_the_gateway_read_the_same_secret_and_prod_renders_none(renders):
    prod = prod_of(renders)
    coturn = prod.get("Deployment", "coturn")["spec"]["template"]["spec"]["containers"][0]
    gateway = prod.get("Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]
    ref = {"name": "podium-turn", "key": "static-auth-secret"}
    assert {"name": "TURN_SECRET", "valueFrom": {"secretKeyRef": ref}} in coturn["env"]
    assert "--static-auth-secret=$(TURN_SECRET)" in coturn["args"]
    assert {"name": "PODIUM_GATEWAY_TURN_SECRET", "valueFrom": {"secretKeyRef": ref}} in gateway["env"]
    ice = {"configMapKeyRef": {"name": "podium-site", "key": "ice-servers"}}
    assert {"name": "PODIUM_GATEWAY_ICE_SERVERS", "valueFrom": ice} in gateway["env"]
    assert prod.of_kind("Secret") == []
    assert manifests.check_no_committed_secrets([prod]) == []


def test_the_gateways_rendered_settings_hand_out_turn_credentials(renders, monkeypatch):
    prod = prod_of(renders)
    assert check_settings([prod]) == []
    env = pod_environment(prod, next(s for s in SERVICES if s.name == "gateway"))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = GatewaySettings()
    (turn,) = settings.ice_servers()
    assert turn.is_turn and not turn.username  # credentials are minted per user, not configured
    assert settings.gateway_turn_secret.get_secret_value()


def test_a_relay_range_opened_to_everyone_fails(repo: Path):
    edit(
        repo / COTURN,
        """        - podSelector:
            matchLabels:
              podium.dev/gateway: "true"
      ports:
        - protocol: UDP
          port: 49152""",
        """        - namespaceSelector: {}
      ports:
        - protocol: UDP
          port: 49152""",
    )
    problems = check_turn([render(repo, PROD)])
    assert any("opens the relay ports" in p for p in problems), problems


def test_relay_ports_that_disagree_with_the_policy_fail(repo: Path):
    edit(repo / COTURN, "--max-port=49407", "--max-port=65535")
    problems = check_turn([render(repo, PROD)])
    assert any("relay ports" in p for p in problems), problems


def test_a_secret_written_into_the_manifest_fails(repo: Path):
    edit(repo / COTURN, "--static-auth-secret=$(TURN_SECRET)", "--static-auth-secret=hunter2")
    problems = check_turn([render(repo, PROD)])
    assert any("must come from the Secret" in p for p in problems), problems


def test_prod_without_turn_fails(repo: Path):
    edit(repo / "deploy/k8s/overlays/prod/kustomization.yaml", "  - ../../components/turn\n", "")
    problems = check_turn([render(repo, PROD)])
    assert any("no TURN server" in p for p in problems), problems
