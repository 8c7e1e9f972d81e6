"""Fake platform servers for tests, importable as ``fakes.<name>`` (``tests/`` is on the path)."""
