"""actioners."""
