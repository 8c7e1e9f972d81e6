"""``python -m actioners`` runs the actioner (the same as ``warden actioner``)."""

from warden.cli import main

main(["actioner"])
