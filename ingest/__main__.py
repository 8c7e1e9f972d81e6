"""``python -m ingest replay FILE`` (the same as ``warden ingest replay FILE``)."""

import sys

from warden.cli import main

main(["ingest", *sys.argv[1:]])
