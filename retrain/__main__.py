"""``python -m retrain data|train|evaluate`` (the same as ``warden data|train|evaluate``)."""

import click

from core.commandline import run
from retrain.cli import data, evaluate, train


@click.group()
def retrain() -> None:
    """Training data, training and evaluation of the toxicity model."""


for command in (data, train, evaluate):
    retrain.add_command(command)

run(retrain, "python -m retrain")
