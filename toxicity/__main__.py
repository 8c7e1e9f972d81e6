"""``python -m toxicity`` scores a file of messages (the same as ``warden score``)."""

from core.commandline import run
from toxicity.cli import score

run(score, "python -m toxicity")
