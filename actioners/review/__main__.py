"""``python -m actioners.review`` runs the review service (the same as ``warden review``)."""

from actioners.review.cli import review
from core.commandline import run

run(review, "python -m actioners.review")
