"""``warden explainer`` (the service) and ``warden explain "some text"`` (offline, no servers)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from core.commandline import settings_from
from core.errors import PayloadError

# A chat message's limit (schemas.events.ChatMessage.text).
MAX_TEXT = 40_000


class ExplainInputError(PayloadError):
    """Text that cannot be explained (not UTF-8, too long); the message says which."""


@click.command()
@click.pass_context
def explainer(ctx: click.Context) -> None:
    """Explain flagged verdicts (LIME) onto moderation.explanations.v1."""
    from core import metrics
    from core.stopping import run_until_signalled
    from explainers.service import serve

    settings = settings_from(ctx)
    metrics.serve(settings.metrics.explainer_port, settings.metrics.host)
    metrics.initialise("explainer", settings.metrics.communities)

    run_until_signalled(lambda stop: serve(settings, stop))


def read_text(text: str) -> str:
    """The text to explain: the argument, or standard input for ``-``; one clear error."""
    if text == "-":
        raw = sys.stdin.buffer.read(MAX_TEXT * 4 + 1)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ExplainInputError(
                f"standard input is not UTF-8 (byte {exc.object[exc.start]:#04x} at offset "
                f"{exc.start})"
            ) from exc
    else:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            # An argument that was not UTF-8 arrives with surrogate escapes.
            raise ExplainInputError(
                f"the text is not UTF-8 (character {exc.start + 1} cannot be read)"
            ) from exc
    if "\x00" in text:
        raise ExplainInputError("the text holds a NUL character")
    if len(text) > MAX_TEXT:
        raise ExplainInputError(
            f"the text has {len(text)} characters; a chat message has at most {MAX_TEXT}"
        )
    return text


@click.command()
@click.argument("text")
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
@click.option(
    "--samples",
    type=click.IntRange(10, 10_000),
    default=None,
    help="Perturbed texts LIME scores [default: WARDEN_EXPLAINER__SAMPLES, 300].",
)
@click.option(
    "--model",
    "model_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Model directory [default: WARDEN_MODEL__PATH or the shipped model].",
)
@click.option("--seed", type=int, default=0, show_default=True, help="LIME's random seed.")
@click.pass_context
def explain(
    ctx: click.Context,
    text: str,
    as_json: bool,
    samples: int | None,
    model_dir: Path | None,
    seed: int,
) -> None:
    """Explain the model's score of TEXT word by word (LIME); TEXT '-' reads standard input.

    \b
    Words in red pushed P(toxic) up, in green down (bold: by 0.1 or more). Context features
    are absent here (a message with no known history), as for `warden score`.
    """
    from explainers import terminal
    from toxicity.explanation import Explainer
    from toxicity.loading import load_for_command

    settings = settings_from(ctx)
    message = read_text(text)
    scorer = load_for_command(model_dir, settings)
    config = settings.explainer
    explained = Explainer(
        scorer,
        samples=samples or config.samples,
        max_words=config.max_words,
        cache_size=config.cache_size,
        seed=seed,
    ).explain(message)
    if as_json:
        click.echo(json.dumps(terminal.as_json(explained), indent=2, ensure_ascii=False))
        return
    color = click.get_text_stream("stdout").isatty()
    click.echo(terminal.report(message, explained, color=color), color=color)
