"""``python -m retrain data|train|evaluate`` (the same as ``warden data|train|evaluate``)."""

import click

from core.commandline import run
from retrain.cli import data, evaluate, train
from retrain.drift_cli import drift


@click.group()
def retrain() -> None:
    """Training data, training and evaluation of the toxicity model."""


for command in (data, train, evaluate):
    retrain.add_command(command)

# `python -m retrain drift run` starts the drift monitor (`warden drift run`).
retrain.add_command(drift)

run(retrain, "python -m retrain")
