"""What an operator sees when a command fails: one ``warden: ...`` line, no traceback, and the
exit code of the kind of error (core.errors), for the failures that used to print a traceback.

Each case runs ``python -m warden ...`` in a subprocess, as a user would; none needs a server
(a closed port stands for PostgreSQL being away).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def warden(*args: str, env: dict[str, str] | None = None, module: str = "warden") -> str:
    """Run ``python -m <module> args`` with only ``env`` of the WARDEN_* variables; its stderr."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        env={**clean, **(env or {})},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return f"{done.returncode}|{done.stderr}"


def one_line(result: str, code: int) -> str:
    """The single ``warden:`` line of a run that exited with ``code``."""
    returncode, _, stderr = result.partition("|")
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("warden: "), stderr
    assert int(returncode) == code, stderr
    return lines[0]


def test_a_database_outage_is_one_line_naming_the_dsn_without_its_password() -> None:
    dsn = f"postgresql://warden:pw-s3cret@127.0.0.1:{_closed_port()}/warden"
    line = one_line(warden("policy", "show", "X", env={"WARDEN_POSTGRES__DSN": dsn}), 5)
    assert "PostgreSQL unavailable" in line
    assert "WARDEN_POSTGRES__DSN=postgresql://warden:***@127.0.0.1:" in line
    assert "pw-s3cret" not in line


def test_a_dsn_that_does_not_parse_is_a_configuration_error() -> None:
    env = {"WARDEN_POSTGRES__DSN": "host=127.0.0.1 password=pw-s3cret oops"}
    line = one_line(warden("strikes", "u", "--community", "c", env=env), 2)
    assert line.startswith("warden: WARDEN_POSTGRES__DSN: ")
    assert "pw-s3cret" not in line


@pytest.fixture
def messages(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": 1, "text": "hello"}\n')
    return path


@pytest.mark.parametrize(
    ("folder", "problem"),
    [("missing", "no such directory"), ("empty", "is not a model directory (no model.json)")],
)
def test_a_bad_model_path_names_the_variable(
    tmp_path: Path, messages: Path, folder: str, problem: str
) -> None:
    (tmp_path / "empty").mkdir()
    model = tmp_path / folder
    result = warden(
        "score",
        "--input",
        str(messages),
        "--output",
        str(tmp_path / "out.jsonl"),
        env={"WARDEN_MODEL__PATH": str(model)},
    )
    line = one_line(result, 2)
    assert line.startswith(f"warden: WARDEN_MODEL__PATH: {model}")
    assert problem in line
    assert not (tmp_path / "out.jsonl").exists()


def test_a_malformed_json_setting_names_the_variable() -> None:
    env = {"WARDEN_PLATFORMS__TWITCH__CHANNELS": "[oops"}
    line = one_line(warden("stack", "status", env=env), 2)
    assert line.startswith("warden: invalid configuration: WARDEN_PLATFORMS__TWITCH__CHANNELS: ")
    assert "not valid JSON" in line


def test_a_misspelt_variable_fails_at_start_naming_it() -> None:
    env = {"WARDEN_KAFKA__BOOTSTRAP_SERVER": "broker-1:9092"}
    line = one_line(warden("stack", "status", env=env), 2)
    assert "WARDEN_KAFKA__BOOTSTRAP_SERVER: no such setting" in line
    assert "did you mean WARDEN_KAFKA__BOOTSTRAP_SERVERS?" in line


def test_score_input_that_is_not_utf8_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"id": 1, "text": "ok"}\n{"id": 2, "text": "caf\xe9"}\n')
    result = warden("score", "--input", str(path), "--output", str(tmp_path / "out.jsonl"))
    line = one_line(result, 4)
    assert line.startswith(f"warden: {path}:2: not UTF-8")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"id,body\n1,hi\n", ":1: the CSV header lacks message_id, user, text, sent_at"),
        (b"message_id,us\xe9r,text,sent_at\n", ":1: not UTF-8 (byte 0xe9 at column 14)"),
    ],
)
@pytest.mark.parametrize("module", ["warden", "ingest"])
def test_a_bad_csv_header_names_the_file_before_anything_is_published(
    tmp_path: Path, content: bytes, problem: str, module: str
) -> None:
    path = tmp_path / "log.csv"
    path.write_bytes(content)
    args = ("ingest", "replay", str(path)) if module == "warden" else ("replay", str(path))
    # A closed broker port: the header is checked before anything would be sent.
    env = {"WARDEN_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{_closed_port()}"}
    line = one_line(warden(*args, env=env, module=module), 4)
    assert line == f"warden: {path}{problem}"


def test_a_metrics_port_in_use_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"WARDEN_METRICS__INGEST_PORT": str(port)}
        line = one_line(warden("ingest", "replay", env=env), 2)
    assert f"cannot serve metrics on 127.0.0.1:{port}: " in line
