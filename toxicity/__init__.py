"""The toxicity model shared by the scorer, the explainers and retraining.

``toxicity.loading.load_model(settings.model)`` returns a ``TextScorer``; every model (the lexical
placeholder, the hybrid encoder + XGBoost model) implements that one protocol.
"""
