"""``warden score``: offline batch scoring of a JSONL file, no servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from core.commandline import settings_from
from core.errors import PayloadError


class InputError(PayloadError):
    """A bad input line; the message names the file and line number."""


def read_messages(path: Path) -> list[tuple[Any, str]]:
    """(id, text) of every non-blank line; InputError names the first bad line."""
    out: list[tuple[Any, str]] = []
    # Bytes, decoded line by line, so that a line that is not UTF-8 is named like any other.
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{path}:{number}: not UTF-8 (byte {exc.object[exc.start]:#04x} at column "
                    f"{exc.start + 1})"
                ) from exc
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
            if not isinstance(record, dict):
                raise InputError(f"{path}:{number}: expected a JSON object")
            ident = record.get("id", record.get("message_id"))
            if ident is None:
                raise InputError(f"{path}:{number}: missing 'id'")
            text = record.get("text")
            if not isinstance(text, str):
                raise InputError(f"{path}:{number}: 'text' must be a string")
            out.append((ident, text))
    return out


@click.command()
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help='JSONL, one {"id": ..., "text": ...} per line (other ChatMessage fields ignored).',
)
@click.option(
    "--output",
    "output_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help='JSONL out: {"id", "p_toxic", "severity", "labels", "label_scores", "model_version"} '
    "in input order.",
)
@click.option(
    "--model",
    "model_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Model directory [default: WARDEN_MODEL__PATH or the shipped model].",
)
@click.option("--report", is_flag=True, help="Print messages per second at the end.")
@click.pass_context
def score(
    ctx: click.Context, input_path: Path, output_path: Path, model_dir: Path | None, report: bool
) -> None:
    """Score messages offline with the hybrid model."""
    import time

    from toxicity.loading import load_for_command

    settings = settings_from(ctx)
    messages = read_messages(input_path)
    scorer = load_for_command(model_dir, settings)
    started = time.monotonic()
    tmp = output_path.with_name(output_path.name + ".partial")
    chunk = 4096
    with tmp.open("w", encoding="utf-8") as out:
        for start in range(0, len(messages), chunk):
            part = messages[start : start + chunk]
            for (ident, _), result in zip(part, scorer.score([t for _, t in part]), strict=True):
                out.write(
                    json.dumps(
                        {
                            "id": ident,
                            "p_toxic": round(result.p_toxic, 6),
                            "severity": result.severity.value,
                            "labels": list(result.labels),
                            "label_scores": result.label_scores,
                            "model_version": scorer.version,
                        }
                    )
                    + "\n"
                )
    tmp.replace(output_path)
    seconds = time.monotonic() - started
    if report:
        rate = len(messages) / seconds if seconds > 0 else float("inf")
        click.echo(
            f"scored {len(messages)} messages in {seconds:.1f}s ({rate:.0f} msgs/s, "
            f"encoder {scorer.encoder.backend}, model {scorer.version})",
            err=True,
        )
