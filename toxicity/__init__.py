"""The toxicity model shared by the scorer, the explainers and retraining.

``load_scorer(settings.model)`` returns a ``TextScorer``; every model (the skeleton's lexical
placeholder, the hybrid encoder + XGBoost model) implements that one protocol.
"""
