"""The Tiltfile evaluates as Starlark and names only what the dev overlay has; broken ones fail."""

from __future__ import annotations

from pathlib import Path

from deploy.check.tiltfile import check_tiltfile, evaluate
from tests.deploy.conftest import ROOT, edit, render


def _dev(renders):
    return next(r for r in renders if r.name == "overlays/dev")


def test_the_tiltfile_passes(renders):
    assert check_tiltfile(ROOT / "Tiltfile", _dev(renders)) == []


def test_the_tiltfile_builds_every_service_with_live_update():
    record = evaluate(ROOT / "Tiltfile")
    refs = {c.args[0] for c in record.of("docker_build_with_restart")}
    assert refs == {
        "podium-room",
        "podium-presence",
        "podium-moderation",
        "podium-media-relay",
        "podium-replay",
        "podium-analytics",
        "podium-webhooks",
        "podium-gateway",
    }


def test_a_port_forward_to_a_port_the_container_lacks_fails(repo: Path, renders):
    edit(
        repo / "Tiltfile",
        'podium_service("moderation", "services.moderation", 50053)',
        'podium_service("moderation", "services.moderation", 50063)',
    )
    problems = check_tiltfile(repo / "Tiltfile", _dev(renders))
    assert any("k8s_resource moderation: forwards port 50063" in p for p in problems), problems


def test_a_service_the_manifests_lack_fails(repo: Path, renders):
    path = repo / "Tiltfile"
    path.write_text(path.read_text() + 'podium_service("billing", "services.billing", 50099)\n')
    problems = check_tiltfile(path, _dev(renders))
    assert any("podium-billing: no workload" in p for p in problems), problems
    assert any("k8s_resource billing: no such workload" in p for p in problems), problems


def test_an_unpinned_version_and_no_context_guard_fail(repo: Path, renders):
    edit(repo / "Tiltfile", 'version_settings(constraint=">=0.33.0,<1.0.0")', "")
    edit(repo / "Tiltfile", "allow_k8s_contexts(", "print(")
    problems = check_tiltfile(repo / "Tiltfile", _dev(renders))
    assert any("version_settings" in p for p in problems), problems
    assert any("allow_k8s_contexts" in p for p in problems), problems


def test_invalid_starlark_fails(repo: Path, renders):
    path = repo / "Tiltfile"
    path.write_text(path.read_text() + "def broken(:\n")
    assert "does not evaluate" in check_tiltfile(path, _dev(renders))[0]


def test_an_unknown_builtin_fails(repo: Path, renders):
    path = repo / "Tiltfile"
    path.write_text(path.read_text() + "helm_resource('x')\n")
    assert "does not evaluate" in check_tiltfile(path, _dev(renders))[0]


def test_the_placeholder_tiltfile_fails(repo: Path, renders):
    path = repo / "Tiltfile"
    path.write_text('fail("Tilt is not set up yet")\n')
    assert "fail(" in check_tiltfile(path, _dev(renders))[0]


def test_services_that_do_not_wait_for_kafka_fail(repo: Path, renders):
    edit(
        repo / "Tiltfile",
        'resource_deps = ["kafka", "postgres", "podium-migrate"],',
        'resource_deps = ["postgres"],',
    )
    problems = check_tiltfile(repo / "Tiltfile", _dev(renders))
    assert any("room: resource_deps must include kafka" in p for p in problems), problems
    assert any("room: resource_deps must include podium-migrate" in p for p in problems), problems


def test_an_install_on_every_change_fails(repo: Path, renders):
    edit(repo / "Tiltfile", 'run(INSTALL, trigger = ["./pyproject.toml"])', "run(INSTALL)")
    problems = check_tiltfile(repo / "Tiltfile", _dev(renders))
    assert any("re-run the install only when pyproject.toml changes" in p for p in problems), problems


def test_the_check_reads_the_dev_overlay(repo: Path):
    # A workload renamed in the manifests is caught from the Tiltfile's side too.
    for name in ("room",):
        path = repo / "deploy/k8s/base" / f"{name}.yaml"
        path.write_text(path.read_text().replace("image: podium-room", "image: podium-rooms"))
    problems = check_tiltfile(repo / "Tiltfile", render(repo, "overlays/dev"))
    assert any("podium-room: no workload" in p for p in problems), problems


def test_a_topic_tilt_does_not_wait_for_fails(repo: Path, renders):
    edit(repo / "Tiltfile", '    "podium-deadletter-v1",\n', "")
    problems = check_tiltfile(repo / "Tiltfile", _dev(renders))
    assert problems == [
        "k8s_resource kafka: add podium-deadletter-v1:kafkatopic to its objects, or services won't wait for it"
    ]
