"""The seed projects' design, for comparison: one synchronous ``POST /predict`` per message.

A FastAPI service around the same model that the scorer uses; the caller sends each message in
its own request and waits for the answer before sending the next, as the seed consumers did.
Run: ``python -m benchmarks.http_baseline --port 8765``.
"""

from __future__ import annotations

import argparse
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from toxicity.base import TextScorer


class PredictRequest(BaseModel):
    text: str


class PredictResponse(BaseModel):
    p_toxic: float
    severity: str
    model_version: str


def build_app(model: TextScorer) -> FastAPI:
    app = FastAPI(title="per-message baseline")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "model_version": model.version}

    # A plain `def` endpoint: FastAPI runs it in its thread pool, as the seed services did.
    @app.post("/predict", response_model=PredictResponse)
    def predict(request: PredictRequest) -> Any:
        (score,) = model.score([request.text])
        return PredictResponse(
            p_toxic=score.p_toxic, severity=score.severity.value, model_version=model.version
        )

    return app


def main() -> None:
    import uvicorn

    from core.settings import get_settings
    from toxicity.loading import load_model

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    model = load_model(get_settings().model)
    uvicorn.run(build_app(model), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
