"""``python -m devkit.chatgen``: see :mod:`devkit.chatgen.cli`."""

from devkit.chatgen.cli import main

raise SystemExit(main())
