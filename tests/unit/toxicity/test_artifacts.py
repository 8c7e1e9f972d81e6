"""A model directory that cannot be read is a configuration error naming the directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from toxicity.artifacts import METADATA_FILE, ModelFormatError, load_meta


def test_a_model_format_error_is_a_config_error() -> None:
    # The CLI maps ConfigError to one line and exit 2; ValueError keeps older callers working.
    assert issubclass(ModelFormatError, ConfigError)
    assert issubclass(ModelFormatError, ValueError)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "no such directory"),
        (b"", r"not a model directory \(no model\.json\)"),
        (b"{oops", r"model\.json: not valid JSON"),
        (b"\xff\xfe", r"model\.json: not valid JSON"),
        (b"[1, 2]", r"model\.json: expected a JSON object"),
    ],
)
def test_an_unreadable_model_directory_says_why(
    tmp_path: Path, content: bytes | None, problem: str
) -> None:
    folder = tmp_path / "model"
    if content is not None:
        folder.mkdir()
        if content:
            (folder / METADATA_FILE).write_bytes(content)
    with pytest.raises(ModelFormatError, match=problem):
        load_meta(folder)
