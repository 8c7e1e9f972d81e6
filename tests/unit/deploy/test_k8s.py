"""deploy/k8s: the Kubernetes manifests, read as YAML (and built by kustomize when kubectl is
here): every service is probed on ``warden_ready``, runs as the image's user on a read-only
root, gets only real settings, and no secret is written into the manifests."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import click
import pytest
import yaml  # type: ignore[import-untyped]
from deploykit import ROOT, image_user, setting_field

from core.settings import MetricsSettings
from deploy.health import SERVICES, metrics_port
from schemas.topics import CHAT_MESSAGES, VERDICTS

K8S = ROOT / "deploy" / "k8s"
# Replicas: at most the partitions of the topic the consumer group reads.
MAX_REPLICAS = {
    "scorer": CHAT_MESSAGES.partitions,
    "images": CHAT_MESSAGES.partitions,
    "actioner": VERDICTS.partitions,
    "explainer": VERDICTS.partitions,
    "drift": 1,
    "review": 1,
    "ingest-discord": 1,
    "ingest-slack": 1,
    "ingest-twitch": 1,
}


@functools.cache
def _documents() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        docs.extend(d for d in yaml.safe_load_all((K8S / resource).read_text()) if d)
    return docs


def _workloads() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in _documents() if d["kind"] in ("Deployment", "Job")}


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def _config() -> dict[str, str]:
    maps = [d for d in _documents() if d["kind"] == "ConfigMap"]
    assert [m["metadata"]["name"] for m in maps] == ["chatwarden-settings"]
    return dict(maps[0]["data"])


def test_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) not installed")
def test_kustomize_builds_it() -> None:
    out = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, check=True, timeout=60
    )
    built = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert len(built) == len(_documents())
    for doc in built:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "chatwarden", doc["metadata"]["name"]


def test_every_deployment_is_probed_on_warden_ready() -> None:
    deployments = {n: w for n, w in _workloads().items() if w["kind"] == "Deployment"}
    assert set(deployments) >= {"scorer", "actioner", "explainer", "drift", "ingest-webhook"}
    for name, deployment in deployments.items():
        container = _container(deployment)
        service = container["readinessProbe"]["exec"]["command"][2]
        assert service in SERVICES, name
        assert container["readinessProbe"]["exec"]["command"] == ["warden", "health", service]
        live = ["warden", "health", service, "--live"]
        assert container["livenessProbe"]["exec"]["command"] == live, name
        assert container["startupProbe"]["exec"]["command"] == live, name
        # The probe reads the port the container serves its metrics on (the default setting).
        metrics = {p["name"]: p["containerPort"] for p in container["ports"]}["metrics"]
        assert metrics == metrics_port(MetricsSettings(), service), name
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(metrics), name
        # The probe asks the service the container runs.
        args = container["args"]
        assert service == ("ingest" if args[0] == "ingest" else args[0]), (name, args)


def test_replicas_stay_within_the_partitions() -> None:
    for name, workload in _workloads().items():
        if workload["kind"] != "Deployment":
            continue
        replicas = workload["spec"]["replicas"]
        assert 0 <= replicas <= MAX_REPLICAS.get(name, replicas), name
    assert _workloads()["drift"]["spec"]["strategy"]["type"] == "Recreate"


def test_pods_run_as_the_image_user_on_a_read_only_root() -> None:
    uid, gid = image_user()
    for name, workload in _workloads().items():
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (
            uid,
            gid,
        )
        # Volumes (the secrets included) are readable by the image's group.
        assert pod["securityContext"]["fsGroup"] == gid, name
        security = _container(workload)["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"]["drop"] == ["ALL"], name


def test_no_secret_is_inline() -> None:
    docs = _documents()
    assert not [d for d in docs if d["kind"] == "Secret"], "Secrets are created, never committed"
    secret_settings = set()
    for variable in _config():
        field = setting_field(variable)
        assert field is not None, f"ConfigMap: {variable} is no setting"
        if "SecretStr" in str(field.annotation):
            secret_settings.add(variable)
    assert not secret_settings, f"secrets in the ConfigMap: {secret_settings}"
    for name, workload in _workloads().items():
        container = _container(workload)
        for item in container.get("env", []):
            field = setting_field(item["name"])
            assert field is not None, f"{name}: {item['name']} is no setting"
            assert "SecretStr" not in str(field.annotation), f"{name}: {item['name']} inline"
        volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
        secret = volumes["secrets"]["secret"]
        # Its own Secret, read as files through WARDEN_SECRETS_DIR.
        assert secret["secretName"] == f"chatwarden-{name.removeprefix('warden-')}" or (
            name == "warden-init" and secret["secretName"] == "chatwarden-admin"
        )
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert mounts["secrets"]["mountPath"] == _config()["WARDEN_SECRETS_DIR"], name
        assert mounts["secrets"]["readOnly"] is True, name


def test_paths_a_pod_writes_are_volumes() -> None:
    for name, workload in _workloads().items():
        container = _container(workload)
        mounts = [m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")]
        assert "/tmp" in mounts, name
        for item in container.get("env", []):
            field = setting_field(item["name"])
            if field is not None and "Path" in str(field.annotation):
                path = item["value"]
                assert any(path == m or path.startswith(m + "/") for m in mounts), (name, path)


def test_every_container_runs_a_warden_command() -> None:
    from warden.cli import main

    ctx = click.Context(main)
    for name, workload in _workloads().items():
        container = _container(workload)
        if "args" not in container:
            assert container["command"] == ["sh", "-c", "warden migrate && warden topics create"]
            continue
        args = container["args"]
        command: Any = main.get_command(ctx, args[0])
        assert command is not None, (name, args)
        if isinstance(command, click.Group):
            assert command.get_command(ctx, args[1]) is not None, (name, args)


def test_the_runbook_covers_kubernetes() -> None:
    runbook = (ROOT / "deploy" / "README.md").read_text()
    assert "kubectl apply -k deploy/k8s" in runbook
    assert Path(K8S / "kustomization.yaml").is_file()
