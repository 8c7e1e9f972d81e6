"""The ``policy set KEY=VALUE`` edit language: dotted paths into a policy, ``+``/``-`` on lists,
values parsed as JSON when they parse; every change is validated as a whole policy."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from actioners.policy.model import Policy

_ONE_OF = {"strike_decay_hours": "strike_decay_days", "strike_decay_days": "strike_decay_hours"}


class PolicyChangeError(ValueError):
    """A ``policy set`` change that does not make a valid policy."""


def parse_value(text: str) -> Any:
    """A command-line value: JSON when it parses (numbers, booleans, lists, null), else text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def apply_changes(policy: Policy, changes: Mapping[str, Any]) -> Policy:
    """``policy`` with dotted-path changes applied (``thresholds.high``, ``channels.C.shadow``).

    A path ending in ``+`` appends to a list (``exempt_roles+``), ``-`` removes from it.
    """
    document = policy.to_document()
    for path, value in changes.items():
        op = path[-1] if path[-1:] in ("+", "-") else ""
        parts = (path[:-1] if op else path).split(".")
        if not all(parts):
            raise PolicyChangeError(f"bad path {path!r}")
        node: Any = document
        for part in parts[:-1]:
            if not isinstance(node, dict):
                raise PolicyChangeError(f"{path}: {part!r} is not a section")
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
        if not isinstance(node, dict):
            raise PolicyChangeError(f"{path}: not a section")
        leaf = parts[-1]
        if op:
            current = node.get(leaf)
            if not isinstance(current, list):
                raise PolicyChangeError(f"{path}: {leaf!r} is not a list")
            items = value if isinstance(value, list) else [value]
            if op == "+":
                node[leaf] = current + [v for v in items if v not in current]
            else:
                node[leaf] = [v for v in current if v not in items]
        else:
            node[leaf] = value
            if node is document and leaf in _ONE_OF:
                # The decay is set in hours or in days: the newer setting replaces the other.
                document[_ONE_OF[leaf]] = None
    try:
        return Policy.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'policy'}: {err['msg']}"
            for err in exc.errors()
        )
        raise PolicyChangeError(problems) from exc
