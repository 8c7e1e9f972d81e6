"""``python -m scorers`` runs one scoring worker (the same as ``warden scorer``)."""

from core.commandline import run
from scorers.cli import scorer

run(scorer, "python -m scorers")
