"""``warden score-image PATH...``: score local image files offline (no servers), as the image
scorer would score them as attachments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from core.commandline import settings_from
from core.errors import AttachmentError, ImageRejected, WardenError


def read_image_file(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, read no further than one byte past ``max_bytes``; one clear error."""
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except IsADirectoryError:
        raise ImageRejected("unreadable", f"{path}: is a directory") from None
    except OSError as exc:
        raise ImageRejected("unreadable", f"{path}: {exc.strerror or exc}") from exc
    return data


@click.command(name="score-image")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image, per line.")
@click.pass_context
def score_image(ctx: click.Context, paths: tuple[Path, ...], as_json: bool) -> None:
    """Score image files with the image model (NudeNet 320n), as the image scorer does.

    Each file is checked as an attachment is (WARDEN_IMAGES__MAX_BYTES, __MAX_PIXELS, magic
    bytes, decompression bombs). A file that cannot be read or is no safe image gets one line
    on stderr; the others are still scored, and the exit status is then 4.
    """
    from imagery.base import ImageThresholds
    from imagery.decoding import decode_image
    from imagery.nudenet import NudeNetModel

    config = settings_from(ctx).images
    thresholds = ImageThresholds.from_settings(config)
    model = NudeNetModel(threads=config.threads)
    failed: WardenError | None = None
    for path in paths:
        try:
            data = read_image_file(path, config.max_bytes)
            decoded = decode_image(data, max_bytes=config.max_bytes, max_pixels=config.max_pixels)
        except AttachmentError as exc:
            detail = exc.detail if exc.detail.startswith(str(path)) else f"{path}: {exc.detail}"
            click.echo(f"warden: {exc.kind} ({exc.reason}): {detail}", err=True)
            failed = exc
            continue
        (score,) = model.score([decoded.pixels])
        severity = thresholds.severity(score)
        row: dict[str, Any] = {
            "path": str(path),
            "sha256": decoded.sha256,
            "format": decoded.format,
            "width": decoded.width,
            "height": decoded.height,
            "p_unsafe": round(score.p_unsafe, 6),
            "severity": severity.value,
            "labels": thresholds.labels(score),
            "label_scores": {k: round(v, 6) for k, v in score.label_scores.items()},
            "detections": {k: round(v, 6) for k, v in score.detections.items()},
            "model_version": model.version,
        }
        if as_json:
            click.echo(json.dumps(row))
        else:
            found = ", ".join(f"{k} {v:.2f}" for k, v in row["detections"].items()) or "nothing"
            labels = ", ".join(row["labels"]) or "-"
            click.echo(
                f"{path}  {severity.value:<6} p={score.p_unsafe:.2f}  labels: {labels}  "
                f"({decoded.width}x{decoded.height} {decoded.format}; found: {found})"
            )
    if failed is not None:
        ctx.exit(failed.exit_code)
