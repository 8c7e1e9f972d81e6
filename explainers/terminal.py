"""An explanation as terminal text (``warden explain``): the message with its words highlighted
by weight, a table of the weights, and the reasons words do not show; and as JSON for scripts.

With colour (a terminal), a word that pushed P(toxic) up is red and one that pushed it down is
green, bold when it moved the score by :data:`STRONG` or more, plain when by less than
:data:`FAINT`. Without colour (a pipe, a file), the words that moved the score by :data:`FAINT`
or more carry their weight in brackets instead.
"""

from __future__ import annotations

import re
from typing import Any

import click

from toxicity.explanation import Explained

STRONG = 0.1
FAINT = 0.02
_PIECES = re.compile(r"(\s+)")


def highlighted(text: str, explained: Explained, *, color: bool, max_chars: int = 2000) -> str:
    """``text`` with each explained word marked by its weight (see the module doc)."""
    weights = dict(explained.weights)
    shown = text if len(text) <= max_chars else text[:max_chars]
    out = []
    for piece in _PIECES.split(shown):
        weight = weights.get(piece)
        if not piece or piece.isspace() or weight is None or abs(weight) < FAINT:
            out.append(piece)
        elif color:
            out.append(
                click.style(
                    piece,
                    fg="red" if weight > 0 else "green",
                    bold=True if abs(weight) >= STRONG else None,
                )
            )
        else:
            out.append(f"{piece}[{weight:+.2f}]")
    if len(shown) < len(text):
        out.append(f" ... ({len(text) - len(shown)} more characters)")
    return "".join(out)


def report(text: str, explained: Explained, *, color: bool) -> str:
    """The whole terminal report of one explanation."""
    labels = ", ".join(explained.labels) or "none"
    lines = [
        f"P(toxic) {explained.p_toxic:.3f}  {explained.severity.value}  labels: {labels}"
        f"  (model {explained.model_version})",
        "",
        highlighted(text, explained, color=color),
        "",
    ]
    if explained.weights:
        lines.append("  weight  word (+ pushed towards toxic, - towards safe)")
        for word, weight in sorted(explained.weights, key=lambda item: -item[1]):
            shown = word if len(word) <= 60 else word[:57] + "..."
            cell = f"{weight:+8.3f}"
            if color and abs(weight) >= FAINT:
                cell = click.style(cell, fg="red" if weight > 0 else "green")
            lines.append(f"{cell}  {shown}")
        fit = f"{explained.fit:.2f}" if explained.fit is not None else "n/a"
        intercept = f"{explained.intercept:.3f}" if explained.intercept is not None else "n/a"
        lines.append(
            f"LIME local fit R^2 {fit}, intercept {intercept}; {explained.samples} perturbed "
            f"texts scored, {explained.cache_hits} without the encoder (repeats, cache)"
        )
        if explained.truncated:
            lines.append(f"only the first {explained.words} distinct words were varied")
    else:
        lines.append("no words to explain")
    if explained.reasons:
        lines.append("reasons besides the words:")
        lines.extend(f"  {label}: {reason}" for label, reason in explained.reasons.items())
    return "\n".join(lines)


def as_json(explained: Explained) -> dict[str, Any]:
    """The explanation as the ``Explanation`` event holds it, plus what the CLI knows besides."""
    event = explained.event("cli")
    document = event.model_dump(
        mode="json",
        exclude={"message_id", "platform", "community", "verdict_scored_at", "on_demand"},
    )
    document.update(
        labels=list(explained.labels),
        words=explained.words,
        truncated=explained.truncated,
        cache_hits=explained.cache_hits,
    )
    return document
