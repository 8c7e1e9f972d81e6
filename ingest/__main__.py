"""``python -m ingest replay FILE`` (the same as ``warden ingest replay FILE``)."""

from core.commandline import run
from ingest.cli import ingest

run(ingest, "python -m ingest")
