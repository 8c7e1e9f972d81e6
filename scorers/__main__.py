"""``python -m scorers`` runs one scoring worker (the same as ``warden scorer``)."""

from warden.cli import main

main(["scorer"])
