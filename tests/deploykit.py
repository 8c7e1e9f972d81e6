"""What the deployment tests read from the Dockerfile, docker-compose.yml and the settings.

No Docker engine runs here, so the tests read the files the engine would: the image's
environment and user from the Dockerfile, each service's environment, volumes and command from
the compose file (YAML anchors and merges resolved by the YAML loader, ``${VAR:-default}``
interpolated the way compose does it), and which ``WARDEN_*`` variable names a setting.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]
from pydantic import BaseModel

from core.settings import ENV_PREFIX, NESTED_DELIMITER, Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
IMAGE_DIR = "/app"  # WORKDIR: where the code is in the image

_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def interpolate(value: str, environment: dict[str, str] | None = None) -> str:
    """``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}`` as compose resolves them against
    ``environment``; a required variable that is missing raises ``KeyError``."""
    environment = environment or {}

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        if environment.get(name):
            return environment[name]
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            raise KeyError(f"{name}: {arg}")
        return ""

    return _VARIABLE.sub(one, value)


def dockerfile_lines() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    lines: list[str] = []
    current = ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    return lines


def image_env() -> dict[str, str]:
    """Every ``ENV`` of the image (the last stage's, in order)."""
    env: dict[str, str] = {}
    for line in dockerfile_lines():
        if line.startswith("FROM "):
            env = {}
        elif line.startswith("ENV "):
            for pair in shlex.split(line[4:]):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def image_user() -> tuple[int, int]:
    """The image's ``USER`` as (uid, gid); numeric, so Kubernetes can check runAsNonRoot."""
    users = [line.split()[1] for line in dockerfile_lines() if line.startswith("USER ")]
    uid, _, gid = users[-1].partition(":")
    return int(uid), int(gid or uid)


def service_environment(service: dict[str, Any]) -> dict[str, str | None]:
    """A service's ``environment`` as a mapping (None: passed through from the host if set)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return {k: (v if sep else None) for k, sep, v in (item.partition("=") for item in env)}
    return {k: (None if v is None else str(v)) for k, v in env.items()}


def mount_targets(service: dict[str, Any]) -> list[str]:
    """Where the service may write: its volumes (not :ro) and tmpfs mounts."""
    targets: list[str] = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            parts = volume.split(":")
            if len(parts) >= 2 and (len(parts) < 3 or "ro" not in parts[2].split(",")):
                targets.append(parts[1])
        elif not volume.get("read_only"):
            targets.append(volume["target"])
    tmpfs = service.get("tmpfs") or []
    targets.extend([tmpfs] if isinstance(tmpfs, str) else tmpfs)
    return [t.split(":")[0] for t in targets]


def setting_field(variable: str) -> Any | None:
    """The pydantic field a ``WARDEN_*`` variable sets (None: no such setting)."""
    if not variable.startswith(ENV_PREFIX):
        return None
    model: Any = Settings
    field = None
    for part in variable[len(ENV_PREFIX) :].lower().split(NESTED_DELIMITER):
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(part)
        if field is None:
            return None
        model = field.annotation
    return field


def is_path_setting(variable: str) -> bool:
    field = setting_field(variable)
    return field is not None and "Path" in str(field.annotation)
