"""The Dockerfile and .dockerignore, read statically (no Docker engine here): a non-root user
that owns exactly the folders the services write, CPU-only torch unless asked, and a build
context that never carries local state or secrets. tests/integration/test_image_permissions.py
runs the services with this user and these paths."""

from __future__ import annotations

import fnmatch
import re

from deploykit import ROOT, compose, dockerfile_lines, image_env, image_user, setting_field

DOCKERIGNORE = ROOT / ".dockerignore"


def test_runs_as_a_numeric_non_root_user_without_a_writable_home() -> None:
    uid, gid = image_user()
    assert uid >= 1000 and gid >= 1000
    env = image_env()
    assert env["HOME"] == "/nonexistent"
    run = " ".join(line for line in dockerfile_lines() if line.startswith("RUN "))
    assert f"--uid {uid}" in run and "--no-create-home" in run


def test_the_user_owns_exactly_the_folders_services_write() -> None:
    uid, gid = image_user()
    run = " ".join(line for line in dockerfile_lines() if line.startswith("RUN "))
    owned = re.search(rf"chown {uid}:{gid} ([^&]+)", run)
    assert owned is not None
    folders = set(owned.group(1).split())
    env = image_env()
    # The image's path settings point there, and so does every volume of the compose file.
    paths = {v for k, v in env.items() if setting_field(k) is not None and v.startswith("/")}
    assert paths == folders == {"/var/lib/chatwarden", "/var/cache/chatwarden"}
    for name, service in compose()["services"].items():
        if "chatwarden" not in str(service.get("image", "")):
            continue
        for volume in service.get("volumes") or []:
            target = volume.split(":")[1]
            assert any(target == f or target.startswith(f + "/") for f in folders), (name, target)
    # Libraries that keep files in HOME are pointed elsewhere.
    assert env["HF_HOME"].startswith("/var/cache/chatwarden/")
    assert env["MPLCONFIGDIR"].startswith("/tmp/")


def test_torch_is_cpu_only_unless_a_gpu_index_is_given() -> None:
    args = {
        line.split()[1].split("=")[0]: line.split("=", 1)[1]
        for line in dockerfile_lines()
        if line.startswith("ARG ") and "=" in line
    }
    assert args["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    run = " ".join(dockerfile_lines())
    # torch installs first from that index, so the other dependencies find it and add no CUDA.
    assert run.index("os.environ['TORCH_INDEX_URL']") < run.index("[*pip, *deps]")
    gpu = compose()["services"]["scorer-gpu"]
    assert "cu1" in gpu["build"]["args"]["TORCH_INDEX_URL"]
    assert gpu["environment"]["WARDEN_MODEL__DEVICE"] == "cuda"


def test_the_build_context_carries_no_local_state_or_secret() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        return any(fnmatch.fnmatch(path, p.rstrip("/")) for p in patterns)

    for path in (".git", ".stack", ".env", "prod.env", "secrets", "tests", ".mypy_cache"):
        assert ignored(path), path
    for path in ("core", "scorers", "models", "pyproject.toml", "README.md", "deploy"):
        assert not ignored(path), path
