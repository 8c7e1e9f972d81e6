"""Encoder speed and int8 fidelity on this CPU: ``python -m benchmarks.encoder [--model DIR]``.

Measures messages per second for the fp32 and the int8 encoder on short chat messages (HateXplain
posts when fetched, else the test fixtures), the cosine between int8 and fp32 embeddings (and,
for comparison, per-tensor int8, which distorts them on x86 without VNNI), and the end-to-end
rate of the hybrid scorer as ``warden score`` runs it. With ``--model`` the numbers are stored
in that model's ``model.json`` and card.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from benchmarks.host import cpu

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "unit" / "retrain" / "fixtures"


def chat_messages(cache_dir: Path, n: int) -> list[str]:
    from retrain.datasets import hatexplain_path, read_hatexplain, read_pool
    from retrain.sources import is_fetched

    if is_fetched(cache_dir, ("hatexplain",)):
        texts = [
            e.text
            for split in ("dev", "test")
            for e in read_hatexplain(hatexplain_path(cache_dir, split), split)
        ]
    else:
        texts = [e.text for e in read_pool(FIXTURES / "pool.csv")]
    out = (texts * (n // max(len(texts), 1) + 1))[:n]
    return out


def _rate(fn: Any, texts: list[str]) -> tuple[float, Any]:
    started = time.monotonic()
    result = fn(texts)
    return len(texts) / (time.monotonic() - started), result


def _per_tensor_cosine(
    source: Path | str, tokenizer: Any, texts: list[str], ref: np.ndarray, cache_dir: Path
) -> tuple[float, float]:
    """Cosine of per-tensor int8 (the recipe we do not use) to fp32, for the record."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from toxicity.encoder import encoder_hash, export_fp32, mean_pool

    folder = cache_dir / "encoders" / encoder_hash(source)[:16]
    fp32_path = folder / "model.fp32.onnx"
    per_tensor = folder / "bench.per-tensor.onnx"
    if not fp32_path.is_file():
        export_fp32(source, isinstance(source, Path), tokenizer, fp32_path)
    quantize_dynamic(
        str(fp32_path), str(per_tensor), weight_type=QuantType.QInt8, per_channel=False
    )
    session = ort.InferenceSession(str(per_tensor), providers=["CPUExecutionProvider"])
    enc = tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="np")
    feeds = {
        k: enc[k].astype(np.int64)
        for k in ("input_ids", "attention_mask", "token_type_ids")
        if k in enc
    }
    names = {i.name for i in session.get_inputs()}
    hidden = session.run(["last_hidden_state"], {k: v for k, v in feeds.items() if k in names})[0]
    cos = np.sum(mean_pool(hidden, feeds["attention_mask"]) * ref, axis=1)
    per_tensor.unlink(missing_ok=True)
    return float(cos.mean()), float(cos.min())


@click.command()
@click.option("-n", "count", type=int, default=10_000, show_default=True)
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--threads", type=int, default=2, show_default=True)
@click.option(
    "--model",
    "model_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
)
def main(count: int, batch_size: int, threads: int, model_dir: Path | None) -> None:
    """Measure fp32 vs int8 encoder speed and fidelity; optionally record them in a model."""
    import torch

    from core.settings import get_settings
    from toxicity.encoder import Encoder

    torch.set_num_threads(threads)
    settings = get_settings()
    cache_dir = settings.stack.cache_dir
    max_length = 64
    if model_dir is not None:
        from toxicity.artifacts import load_meta

        max_length = load_meta(model_dir).max_length
    texts = chat_messages(cache_dir, count)
    fp32 = Encoder.load(None, quantize="none", batch_size=batch_size, max_length=max_length)
    int8 = Encoder.load(
        None, quantize="int8", cache_dir=cache_dir, batch_size=batch_size, max_length=max_length
    )
    int8.embed(texts[:64])
    fp32.embed(texts[:64])
    rate32, v32 = _rate(fp32.embed, texts)
    rate8, v8 = _rate(int8.embed, texts)
    cos = np.sum(v32 * v8, axis=1)
    sample = texts[:1000]
    pt_mean, pt_min = _per_tensor_cosine(
        int8.source, fp32._tokenizer, sample, v32[:1000], cache_dir
    )
    bench: dict[str, Any] = {
        "n": len(texts),
        "batch_size": batch_size,
        "threads": threads,
        "max_length": max_length,
        "cpu": cpu()[0],
        "rows": [
            {"backend": "fp32 (torch)", "msgs_per_s": rate32},
            {
                "backend": "int8 per-channel (ONNX Runtime)",
                "msgs_per_s": rate8,
                "cos_mean": float(cos.mean()),
                "cos_min": float(cos.min()),
            },
            {
                "backend": "int8 per-tensor (not used; 1,000 msgs)",
                "msgs_per_s": float("nan"),
                "cos_mean": pt_mean,
                "cos_min": pt_min,
            },
        ],
    }
    # The machine is shared: record how busy it was, since the rates depend on it.
    bench["load_average_1m"] = round(os.getloadavg()[0], 2)
    if model_dir is not None:
        from retrain.card import model_card
        from toxicity.artifacts import METADATA_FILE, load_meta
        from toxicity.hybrid import HybridScorer

        scorer = HybridScorer.load(
            model_dir,
            settings.model.model_copy(update={"quantize": "int8", "batch_size": batch_size}),
            cache_dir=cache_dir,
        )
        scorer.score(texts[:64])
        bench["score_msgs_per_s"], _ = _rate(scorer.score, texts)
        raw = json.loads((model_dir / METADATA_FILE).read_text())
        raw["metrics"]["encoder_benchmark"] = bench
        (model_dir / METADATA_FILE).write_text(json.dumps(raw, indent=2) + "\n")
        (model_dir / "MODEL_CARD.md").write_text(model_card(load_meta(model_dir)))
    click.echo(json.dumps(bench, indent=2))


if __name__ == "__main__":
    main()
