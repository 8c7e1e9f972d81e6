"""The explainer service: LIME explanations of flagged verdicts (``explainers.service``)."""
