"""``warden score-image PATH... [--json]``: offline, as a user runs it (a real process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import skimage.data
from PIL import Image

REPO = Path(__file__).resolve().parents[3]


def warden(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "warden", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
        check=False,
    )


def test_scores_files_and_names_each_one_it_cannot_read(tmp_path: Path) -> None:
    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(skimage.data.astronaut()).save(photo, quality=95)
    fake = tmp_path / "fake.png"
    fake.write_text("<html>not a picture</html>")
    missing = tmp_path / "missing.webp"

    done = warden("score-image", str(photo), "--json", home=tmp_path)
    assert done.returncode == 0, done.stderr
    (row,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert row["severity"] == "SAFE" and row["labels"] == []
    assert (row["width"], row["height"], row["format"]) == (512, 512, "jpeg")
    assert row["detections"].keys() == {"FACE_FEMALE"} and row["model_version"].startswith(
        "nudenet"
    )

    done = warden("score-image", str(fake), str(photo), str(missing), home=tmp_path)
    assert done.returncode == 4
    assert str(photo) in done.stdout and "SAFE" in done.stdout and "FACE_FEMALE" in done.stdout
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 2, done.stderr
    assert str(fake) in errors[0] and "not_an_image" in errors[0]
    assert str(missing) in errors[1] and "No such file" in errors[1]
