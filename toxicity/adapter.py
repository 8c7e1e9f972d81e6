"""A low-rank adapter (LoRA) for the sentence encoder, merged into its weights on first use.

``warden train`` fine-tunes all-MiniLM-L6-v2 on chat with low-rank updates of the linear layers
of every transformer block (``retrain.finetune``) and ships only those updates in the model
directory (``encoder_adapter.safetensors``, ~2.6 MB instead of the encoder's 90 MB). Each
update is a pair of matrices per layer, ``<module>.lora_a`` (rank x in) and ``<module>.lora_b``
(out x rank), and the merged weight is ``W + scale * B @ A``; the file's metadata holds
``scale``, ``rank`` and the base encoder's sha256.

:func:`merged_encoder` writes the merged encoder once into the cache
(``<cache>/encoders/merged-<id>/``, a plain Hugging Face directory) and returns it, so every
back end (int8 ONNX, fp32, CUDA fp16) loads it as it loads the base encoder. Its identity is
``merge.json`` (the base's and the adapter's sha256), which ``toxicity.encoder.encoder_hash``
reads, so the same base and adapter give the same id on every machine.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from toxicity.encoder import encoder_hash, file_sha256

logger = logging.getLogger(__name__)

ADAPTER_FILE = "encoder_adapter.safetensors"
MERGE_FILE = "merge.json"
# The linear layers of a BERT block that get an update (attention q/k/v/out, feed-forward).
TARGETS = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)


def merged_id(base_sha256: str, adapter_sha256: str) -> str:
    """The merged encoder's identity: a hash of its two parts."""
    return hashlib.sha256(f"{base_sha256}+{adapter_sha256}".encode()).hexdigest()


def target_modules(model: Any) -> dict[str, Any]:
    """Module name (as in the adapter file) -> the ``nn.Linear`` it updates."""
    found = {}
    for index, layer in enumerate(model.encoder.layer):
        for target in TARGETS:
            module = layer
            for part in target.split("."):
                module = getattr(module, part)
            found[f"encoder.layer.{index}.{target}"] = module
    return found


def merged_encoder(base: Path, adapter: Path, cache_dir: Path) -> Path:
    """The directory of ``base`` with ``adapter`` merged in, written on first use."""
    base_sha = encoder_hash(base)
    adapter_sha = file_sha256(adapter)
    identity = merged_id(base_sha, adapter_sha)
    folder = cache_dir / "encoders" / f"merged-{identity[:16]}"
    if (folder / MERGE_FILE).is_file():
        return folder
    # Containers sharing the cache volume may have the same pid: a random part too.
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:12]}")
    shutil.rmtree(tmp, ignore_errors=True)
    model, tokenizer = _merge(base, adapter, base_sha)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    (tmp / MERGE_FILE).write_text(
        json.dumps({"base_sha256": base_sha, "adapter_sha256": adapter_sha, "id": identity})
    )
    try:
        tmp.rename(folder)
    except OSError:  # another process merged it first
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("encoder adapter %s merged into %s", adapter_sha[:12], folder)
    return folder


def _merge(base: Path, adapter: Path, base_sha: str) -> tuple[Any, Any]:
    import torch
    from safetensors import safe_open
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(str(base), local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
    modules = target_modules(model)
    with safe_open(str(adapter), framework="pt") as handle:
        meta = handle.metadata() or {}
        if meta.get("base_sha256") not in (None, base_sha):
            raise ConfigError(
                f"{adapter}: trained on encoder {meta['base_sha256'][:12]},"
                f" not on {base} ({base_sha[:12]})"
            )
        scale = float(meta.get("scale", "1"))
        names = {key.rsplit(".", 1)[0] for key in handle.keys()}  # noqa: SIM118 - not a dict
        unknown = names - set(modules)
        if unknown:
            raise ConfigError(f"{adapter}: no such encoder layer {sorted(unknown)[0]!r}")
        with torch.no_grad():
            for name in sorted(names):
                a = handle.get_tensor(f"{name}.lora_a").float()
                b = handle.get_tensor(f"{name}.lora_b").float()
                modules[name].weight += scale * (b @ a)
    model.eval()
    return model, tokenizer
