"""retrain."""
