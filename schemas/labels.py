"""The label taxonomy: what a verdict's ``labels`` may say, and who says it.

A verdict's severity says how bad a message is; its labels say what the harm is, so that a
policy can treat harms differently (a community that allows swearing still removes threats).

- Harm labels come from the model, each with a score in ``Verdict.label_scores``:
  ``insult``, ``threat``, ``self_harm``, ``identity_attack``, ``sexual_harassment`` and
  ``profanity`` (swearing, which on its own is no harm to anyone in particular, and the
  reclaimed in-group spellings of a slur, which the model grades: ``toxicity.lexicon``).
- Image labels come from the image model, each with a score in ``Verdict.label_scores``, on
  image verdicts (``Verdict.kind == "image"``): ``sexual_explicit`` (exposed genitals, anus,
  female breasts or buttocks) and ``sexual_suggestive`` (the same parts covered, as in
  underwear or swimwear). Faces, feet, bellies, armpits and bare male chests are detected but
  are no label: they are ordinary pictures.
- ``hard_slur`` comes from the word-list rule (:data:`schemas.rules.HARD_SLUR`).
- Stream labels come from the scorer's stateful detectors, each with a reason a moderator can
  read in ``Verdict.reasons``: ``spam`` (the same or near-same line from one user, again and
  again), ``flood`` (too many lines from one user in a window), ``caps`` (shouting),
  ``link`` (a URL outside the community's allow-list), ``emote_flood`` (an emote wall),
  ``mention_flood`` (many mentions in one line), ``split_evasion`` (a word spelt across
  consecutive lines, "k" "y" "s") and ``raid`` (a burst of first-time chatters posting
  near-duplicate lines in one channel; see ``RaidEvent``).

Labels are open strings in the schema (``Label``) so that a new detector or model label is not a
breaking change; the names below are the ones this code base writes.
"""

from __future__ import annotations

from schemas.rules import HARD_SLUR

INSULT = "insult"
THREAT = "threat"
SELF_HARM = "self_harm"
IDENTITY_ATTACK = "identity_attack"
SEXUAL_HARASSMENT = "sexual_harassment"
PROFANITY = "profanity"

HARM_LABELS: tuple[str, ...] = (
    INSULT,
    THREAT,
    SELF_HARM,
    IDENTITY_ATTACK,
    SEXUAL_HARASSMENT,
    PROFANITY,
)
"""Model labels, with per-label scores."""

SEXUAL_EXPLICIT = "sexual_explicit"
SEXUAL_SUGGESTIVE = "sexual_suggestive"

IMAGE_LABELS: tuple[str, ...] = (SEXUAL_EXPLICIT, SEXUAL_SUGGESTIVE)
"""Image model labels, with per-label scores (image verdicts only)."""

SPAM = "spam"
FLOOD = "flood"
CAPS = "caps"
LINK = "link"
EMOTE_FLOOD = "emote_flood"
MENTION_FLOOD = "mention_flood"
SPLIT_EVASION = "split_evasion"
RAID = "raid"

STREAM_LABELS: tuple[str, ...] = (
    SPAM,
    FLOOD,
    CAPS,
    LINK,
    EMOTE_FLOOD,
    MENTION_FLOOD,
    SPLIT_EVASION,
    RAID,
)
"""Labels of the scorer's stateful detectors, each with a reason."""

RULE_LABELS: tuple[str, ...] = (HARD_SLUR,)

TAXONOMY: tuple[str, ...] = HARM_LABELS + RULE_LABELS + STREAM_LABELS
"""The labels of text verdicts (image verdicts carry :data:`IMAGE_LABELS`)."""
