"""``core.commandline``: each kind of error ends a command with one line and its own exit code."""

from __future__ import annotations

import click
import pytest

from core import errors
from core.commandline import fail, run
from core.errors import WardenError

# The exit codes the README documents; scripts rely on them, so a change must be deliberate.
EXIT_CODES: dict[type[WardenError], int] = {
    errors.WardenError: 1,
    errors.ConfigError: 2,
    errors.StackError: 3,
    errors.PayloadError: 4,
    errors.TransientError: 5,
    errors.ActionError: 6,
    errors.RetriableActionError: 6,
    errors.PermanentActionError: 6,
}
# Attachment errors carry a reason code besides their message: AttachmentError(reason, detail).
ATTACHMENT_EXIT_CODES: dict[type[errors.AttachmentError], int] = {
    errors.AttachmentError: 4,
    errors.ImageRejected: 4,
    errors.FetchRejected: 4,
    errors.FetchFailed: 5,
}


def _tree(root: type[WardenError]) -> list[type[WardenError]]:
    found = [root]
    for sub in root.__subclasses__():
        if sub.__module__ == errors.__name__:
            found.extend(_tree(sub))
    return found


def test_every_class_of_the_tree_has_a_documented_exit_code() -> None:
    assert set(_tree(WardenError)) == set(EXIT_CODES) | set(ATTACHMENT_EXIT_CODES)


@pytest.mark.parametrize("kind", list(ATTACHMENT_EXIT_CODES), ids=lambda kind: kind.__name__)
def test_an_attachment_error_prints_its_reason_on_one_line(
    kind: type[errors.AttachmentError], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        fail(kind("too_large", "photo.png: 12582912 bytes,\nover the limit"))
    assert done.value.code == ATTACHMENT_EXIT_CODES[kind] == kind.exit_code
    assert capsys.readouterr().err == (
        f"warden: {kind.kind} (too_large): photo.png: 12582912 bytes, over the limit\n"
    )


@pytest.mark.parametrize("kind", list(EXIT_CODES), ids=lambda kind: kind.__name__)
def test_fail_prints_one_line_and_exits_with_the_code_of_the_kind(
    kind: type[WardenError], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        fail(kind("PostgreSQL unavailable: refused\n\tIs the server running?"))
    assert done.value.code == EXIT_CODES[kind] == kind.exit_code
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "warden: PostgreSQL unavailable: refused Is the server running?\n"


def test_python_dash_m_maps_an_error_through_fail(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.argv", ["broken"])

    @click.command()
    def broken() -> None:
        raise errors.TransientError("the broker is away")

    with pytest.raises(SystemExit) as done:
        run(broken, "python -m broken")
    assert done.value.code == 5
    assert capsys.readouterr().err == "warden: the broker is away\n"
