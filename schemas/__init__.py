"""Topic contracts: payload classes, the topic catalog and their exported JSON Schema, and the
rules that give a verdict its meaning (``schemas.rules``: severity, flag, shared labels)."""
