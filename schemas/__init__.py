"""Topic contracts: payload classes, the topic catalog and their exported JSON Schema."""
