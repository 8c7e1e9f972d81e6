"""``python -m actioners`` runs the actioner (the same as ``warden actioner``)."""

from actioners.cli import actioner
from core.commandline import run

run(actioner, "python -m actioners")
