"""``python -m explainers`` runs the explainer (the same as ``warden explainer``)."""

from core.commandline import run
from explainers.cli import explainer

run(explainer, "python -m explainers")
