"""The shared core of ChatWarden: settings, errors, metrics, client factories and the CLI."""

__version__ = "0.1.0"
