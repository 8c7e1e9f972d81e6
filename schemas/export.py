"""Export the payloads' JSON Schema to ``schemas/json/`` for downstream consumers.

Run ``python -m schemas.export`` after changing a payload; a test fails while the files are stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from schemas.events import PAYLOADS, Event
from schemas.topics import TOPICS

JSON_DIR = Path(__file__).resolve().parent / "json"


def schema_file_name(payload: type[Event]) -> str:
    return f"{payload.__name__}.v1.json"


def render(payload: type[Event]) -> str:
    schema = payload.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://chatwarden.dev/schemas/{schema_file_name(payload)}"
    topics = [t.name for t in TOPICS if t.value_type is payload]
    if topics:
        schema["x-topics"] = topics
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def rendered() -> dict[str, str]:
    """File name -> content, for every payload."""
    return {schema_file_name(p): render(p) for p in PAYLOADS}


def main() -> int:
    JSON_DIR.mkdir(exist_ok=True)
    for name, text in rendered().items():
        (JSON_DIR / name).write_text(text)
    sys.stdout.write(f"wrote {len(PAYLOADS)} schemas to {JSON_DIR}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
