"""The int8 encoder stays close to fp32 (per-channel weights), and embeddings are normalised."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from toxicity.encoder import Encoder, resolve_encoder

SENTENCES = [
    "you are a complete idiot",
    "thanks, that fixed it!",
    "lol get rekt noob",
    "The committee will meet on Thursday to discuss the budget.",
    "I hope you have a wonderful birthday",
    "go back to your country",
    "wtf is this garbage",
    "Could someone explain the new patch notes?",
    "nobody likes you, just leave",
    "great stream today, see you tomorrow",
] * 3


@pytest.fixture(scope="module")
def fp32() -> Encoder:
    return Encoder.load(None, quantize="none", batch_size=8)


def test_default_encoder_is_the_packaged_minilm() -> None:
    encoder_id, source = resolve_encoder(None)
    assert encoder_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert isinstance(source, Path)
    assert (source / "tokenizer.json").is_file()


def test_embeddings_are_normalised_and_in_order(fp32: Encoder) -> None:
    vectors = fp32.embed(SENTENCES)
    assert vectors.shape == (len(SENTENCES), 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Batching sorts by length internally; rows must come back in input order.
    single = fp32.embed([SENTENCES[3]])
    assert np.allclose(vectors[3], single[0], atol=1e-5)


def test_int8_stays_close_to_fp32(fp32: Encoder, tmp_path_factory: pytest.TempPathFactory) -> None:
    int8 = Encoder.load(None, quantize="int8", cache_dir=tmp_path_factory.mktemp("cache"))
    assert int8.backend == "int8"
    vectors = int8.embed(SENTENCES)
    cosine = np.sum(vectors * fp32.embed(SENTENCES), axis=1)
    assert cosine.mean() > 0.98, cosine
    assert cosine.min() > 0.95, cosine
    # A message's int8 embedding (and so its score) does not depend on its batch-mates.
    assert np.array_equal(vectors[3], int8.embed([SENTENCES[3]])[0])


def test_default_encoder_loads_with_the_hub_offline() -> None:
    import os
    import subprocess
    import sys

    code = (
        "from toxicity.encoder import Encoder; "
        "e = Encoder.load(None, quantize='none'); print(e.embed(['hi']).shape)"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "(1, 384)" in result.stdout
