"""The encoder adapter: merged weights compute what the adapter computes, and a wrong file fails."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoModel, AutoTokenizer

from core.errors import ConfigError
from retrain.finetune import add_low_rank
from toxicity.adapter import merged_encoder, target_modules
from toxicity.encoder import default_encoder_path, encoder_hash, mean_pool

TEXTS = ["nice mailbox, number 42 right?", "GG that was clean PogChamp"]


def _embed(model: torch.nn.Module, tokenizer: object) -> np.ndarray:
    enc = tokenizer(TEXTS, padding=True, return_tensors="pt")  # type: ignore[operator]
    with torch.inference_mode():
        hidden = model(**enc).last_hidden_state
    return mean_pool(hidden.numpy(), enc["attention_mask"].numpy())


def test_the_merged_encoder_embeds_as_the_adapted_one_and_is_cached(tmp_path: Path) -> None:
    base = default_encoder_path()
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    adapted = AutoModel.from_pretrained(str(base)).eval()
    generator = torch.Generator().manual_seed(0)
    tensors = {}
    for name, linear in list(target_modules(adapted).items())[::5]:  # some layers, not all
        a = torch.randn(4, linear.in_features, generator=generator) * 0.05
        b = torch.randn(linear.out_features, 4, generator=generator) * 0.05
        tensors[f"{name}.lora_a"], tensors[f"{name}.lora_b"] = a, b
        add_low_rank(linear, a, b, 2.0)
    adapter = tmp_path / "adapter.safetensors"
    save_file(tensors, str(adapter), metadata={"scale": "2.0", "base_sha256": encoder_hash(base)})

    folder = merged_encoder(base, adapter, tmp_path)
    merged = AutoModel.from_pretrained(str(folder)).eval()
    plain = AutoModel.from_pretrained(str(base)).eval()
    want = _embed(adapted, tokenizer)
    np.testing.assert_allclose(_embed(merged, tokenizer), want, atol=2e-5)
    assert np.abs(_embed(plain, tokenizer) - want).max() > 1e-3  # the adapter changes something
    # Named by its parts, and written once.
    assert encoder_hash(folder) != encoder_hash(base)
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert merged_encoder(base, adapter, tmp_path) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp

    other_base = tmp_path / "other.safetensors"
    save_file(tensors, str(other_base), metadata={"base_sha256": "0" * 64})
    with pytest.raises(ConfigError, match="trained on encoder 000000000000"):
        merged_encoder(base, other_base, tmp_path / "b")
    unknown = tmp_path / "unknown.safetensors"
    save_file({"encoder.layer.9.x.lora_a": torch.zeros(1, 1)}, str(unknown))
    with pytest.raises(ConfigError, match=r"no such encoder layer 'encoder\.layer\.9\.x'"):
        merged_encoder(base, unknown, tmp_path / "c")
