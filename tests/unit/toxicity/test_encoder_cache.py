"""The int8 encoder cache shared by scorer replicas (one volume, several containers).

Writers never leave a partial file where a reader looks (temporary name + rename), and
processes that start together build once: the others wait on the folder's lock and then find
the files. Real processes here, as the replicas are.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from toxicity.encoder import build_lock, replacing

REPO = Path(__file__).resolve().parents[3]


def test_a_written_file_appears_whole_and_no_temporary_is_left(tmp_path: Path) -> None:
    target = tmp_path / "encoders" / "abc" / "model.onnx"
    with replacing(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".model.")
        tmp.write_bytes(b"x" * 1000)
        assert not target.exists()  # readers see nothing until it is complete
    assert target.read_bytes() == b"x" * 1000
    assert [p.name for p in target.parent.iterdir()] == ["model.onnx"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), replacing(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("export failed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_temporary_names_differ_even_for_the_same_pid(tmp_path: Path) -> None:
    # Two containers sharing the volume may both be pid 1.
    target = tmp_path / "model.onnx"
    with replacing(target) as first, replacing(target) as second:
        assert first != second
        first.write_bytes(b"1")
        second.write_bytes(b"2")
    assert target.read_bytes() in (b"1", b"2")
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


WORKER = textwrap.dedent(
    """
    import hashlib, os, sys, time
    from pathlib import Path
    from toxicity.encoder import build_lock, replacing

    folder, log = Path(sys.argv[1]), Path(sys.argv[2])
    target = folder / "model.int8.onnx"
    while not (folder.parent / "go").exists():
        time.sleep(0.01)
    if not target.is_file():
        with build_lock(folder):
            if not target.is_file():
                with log.open("a") as out:
                    out.write(f"{os.getpid()}\\n")
                payload = os.urandom(2_000_000)
                with replacing(target) as tmp:
                    with tmp.open("wb") as handle:
                        for start in range(0, len(payload), 100_000):  # written slowly
                            handle.write(payload[start : start + 100_000])
                            time.sleep(0.01)
                (folder / "model.sha256").write_text(hashlib.sha256(payload).hexdigest())
    data = target.read_bytes()
    print(len(data), hashlib.sha256(data).hexdigest())
    """
)


def test_replicas_starting_together_build_once_and_read_whole_files(tmp_path: Path) -> None:
    folder = tmp_path / "cache" / "encoders" / "abc"
    log = tmp_path / "builds.log"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(folder), str(log)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    go = tmp_path / "cache" / "encoders" / "go"
    go.parent.mkdir(parents=True, exist_ok=True)
    go.touch()
    outputs = [worker.communicate(timeout=60) for worker in workers]
    assert all(worker.returncode == 0 for worker in workers), outputs
    assert len(log.read_text().split()) == 1  # one build; the others waited, then read it
    digest = hashlib.sha256((folder / "model.int8.onnx").read_bytes()).hexdigest()
    assert (folder / "model.sha256").read_text() == digest
    assert {out for out, _ in outputs} == {f"2000000 {digest}\n"}
    assert sorted(p.name for p in folder.iterdir()) == [
        ".build.lock",
        "model.int8.onnx",
        "model.sha256",
    ]


def test_the_lock_is_held_across_processes(tmp_path: Path) -> None:
    folder = tmp_path / "abc"
    probe = "import sys; from pathlib import Path; from toxicity.encoder import build_lock\n"
    probe += "import fcntl\n"
    probe += "h = (Path(sys.argv[1]) / '.build.lock').open('a')\n"
    probe += "try:\n    fcntl.flock(h, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept OSError:\n"
    probe += "    sys.exit(3)\n"
    with build_lock(folder):
        held = subprocess.run(
            [sys.executable, "-c", probe, str(folder)], cwd=REPO, check=False, timeout=30
        )
    free = subprocess.run(
        [sys.executable, "-c", probe, str(folder)], cwd=REPO, check=False, timeout=30
    )
    assert (held.returncode, free.returncode) == (3, 0)
