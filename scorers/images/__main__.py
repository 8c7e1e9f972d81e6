"""``python -m scorers.images`` runs the image scorer (the same as ``warden images``)."""

from core.commandline import run
from scorers.images.cli import images

run(images, "python -m scorers.images")
