"""The folders services write, from settings: each created and proved writable at start-up.

In a container every one of them is a volume owned by the image's user (docker-compose.yml,
deploy/k8s/); one that is missing or owned by someone else fails here, naming the variable that
chose it, instead of as a PermissionError deep inside a model build and a crash loop.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from core.errors import ConfigError
from core.settings import Settings, env_name


def model_cache_dir(settings: Settings, *, writable: bool = False) -> Path:
    """Where encoders are built and kept: WARDEN_MODEL__CACHE_DIR, else WARDEN_STACK__CACHE_DIR;
    ``writable``: created and checked (:func:`writable_dir`)."""
    own = settings.model.cache_dir
    path = own or settings.stack.cache_dir
    if writable:
        writable_dir(path, env_name(("model", "cache_dir") if own else ("stack", "cache_dir")))
    return path


def faust_data_dir(settings: Settings, *, writable: bool = False) -> Path:
    """The scorer's faust state: WARDEN_SCORER__DATA_DIR, else <WARDEN_STACK__DIR>/faust;
    ``writable``: created and checked (:func:`writable_dir`)."""
    own = settings.scorer.data_dir
    path = own or settings.stack.dir / "faust"
    if writable:
        writable_dir(path, env_name(("scorer", "data_dir") if own else ("stack", "dir")))
    return path


def writable_dir(path: Path, variable: str) -> Path:
    """Create ``path`` and prove it writable, at start-up: a container whose volume is missing
    or owned by another user fails here naming the variable, not at its first write (a
    PermissionError deep inside a model build, and a crash loop)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".writable-"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"invalid configuration: {variable}: cannot write to {path} ({exc.strerror or exc}); "
            "point it at a writable folder (a volume owned by this user)"
        ) from exc
    return path
