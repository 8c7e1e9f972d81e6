"""Fine-tune the sentence encoder on chat: a low-rank adapter (``toxicity.adapter``).

The frozen all-MiniLM-L6-v2 places "kys", "nice mailbox, number 42 right?" and "go back to the
kitchen" near harmless lines, and no head on top can pull apart what the embedding puts
together. A low-rank update of every block's linear layers (rank 16, ~660k weights) is trained
with a throw-away logistic head on the chat training lines (twice) plus a sample of the public
training rows (so that the embedding keeps what it knew about comment toxicity), one epoch, then
the booster and heads are fitted on the adapted embeddings as usual. Only the training split is
read: the chat set's dev and test splits and HateXplain dev/test never reach this step.

Seeded: the same rows, seed and library versions give the same adapter.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from toxicity.adapter import target_modules
from toxicity.encoder import encoder_hash


@dataclass(frozen=True)
class FinetuneConfig:
    rank: int = 16
    scale: float = 2.0
    epochs: int = 1
    lr: float = 5e-4
    batch_size: int = 32
    max_length: int = 64
    # Public (non-chat) training rows sampled alongside the chat lines, and how often each chat
    # line is seen per epoch.
    other_rows: int = 12_000
    chat_repeat: int = 2
    # Stop after this many steps (smoke runs and tests); None: every epoch.
    max_steps: int | None = None
    seed: int = 0


def training_rows(
    texts: Sequence[str], labels: Sequence[int], is_chat: Sequence[bool], config: FinetuneConfig
) -> list[tuple[str, int]]:
    """The chat rows ``chat_repeat`` times and ``other_rows`` of the rest, shuffled (seeded)."""
    rng = random.Random(config.seed)  # noqa: S311 - a reproducible sample, not a secret
    chat = [(t, y) for t, y, c in zip(texts, labels, is_chat, strict=True) if c]
    other = [(t, y) for t, y, c in zip(texts, labels, is_chat, strict=True) if not c]
    other = rng.sample(other, min(config.other_rows, len(other)))
    rows = chat * config.chat_repeat + other
    rng.shuffle(rows)
    return rows


def finetune_adapter(
    rows: Sequence[tuple[str, int]],
    base: Path,
    out: Path,
    config: FinetuneConfig = FinetuneConfig(),
    echo: Callable[[str], None] = print,
) -> dict[str, float]:
    """Train the adapter on ``rows`` (text as the scorer reads it, label) and write it to
    ``out`` (safetensors); returns what the model card reports."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
    model = AutoModel.from_pretrained(str(base), local_files_only=True)
    for weight in model.parameters():
        weight.requires_grad_(False)
    pairs: dict[str, tuple[torch.nn.Parameter, torch.nn.Parameter]] = {}
    for name, linear in target_modules(model).items():
        a = torch.nn.Parameter(
            torch.randn(config.rank, linear.in_features) / math.sqrt(linear.in_features)
        )
        b = torch.nn.Parameter(torch.zeros(linear.out_features, config.rank))
        pairs[name] = (a, b)
        add_low_rank(linear, a, b, config.scale)
    head = torch.nn.Linear(model.config.hidden_size, 1)
    weights = [w for pair in pairs.values() for w in pair] + list(head.parameters())
    optimiser = torch.optim.AdamW(weights, lr=config.lr, weight_decay=0.0)
    per_epoch = math.ceil(len(rows) / config.batch_size)
    steps = per_epoch * config.epochs
    if config.max_steps is not None:
        steps = min(steps, config.max_steps)
    warmup = max(1, min(50, steps // 10))

    def lr_factor(step: int) -> float:
        return min(1.0, (step + 1) / warmup) * max(0.0, 1.0 - step / steps)

    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lr_factor)
    rng = random.Random(config.seed)  # noqa: S311 - a reproducible order, not a secret
    order = list(rows)
    model.train()
    started = time.monotonic()
    step, loss_sum, seen = 0, 0.0, 0
    while step < steps:
        rng.shuffle(order)
        for start in range(0, len(order), config.batch_size):
            if step >= steps:
                break
            batch = order[start : start + config.batch_size]
            enc = tokenizer(
                [text or " " for text, _ in batch],
                padding=True,
                truncation=True,
                max_length=config.max_length,
                return_tensors="pt",
            )
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            # Scoring sees L2-normalised embeddings; the head reads them scaled up.
            logits = head(torch.nn.functional.normalize(pooled, dim=-1) * 10).squeeze(-1)
            target = torch.tensor([float(label) for _, label in batch])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            step += 1
            loss_sum += float(loss.detach()) * len(batch)
            seen += len(batch)
            if step % 100 == 0:
                echo(f"fine-tuning: step {step}/{steps}, loss {loss_sum / seen:.3f}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, (a, b) in pairs.items():
        tensors[f"{name}.lora_a"] = a.detach().contiguous()
        tensors[f"{name}.lora_b"] = b.detach().contiguous()
    metadata = {
        "scale": str(config.scale),
        "rank": str(config.rank),
        "base_sha256": encoder_hash(base),
        "steps": str(step),
        "rows": str(len(rows)),
    }
    save_file(tensors, str(out), metadata=metadata)
    seconds = time.monotonic() - started
    echo(f"encoder adapter: {step} steps on {len(rows)} rows in {seconds:.0f}s -> {out.name}")
    return {"steps": step, "rows": len(rows), "loss": loss_sum / max(1, seen), "seconds": seconds}


def add_low_rank(linear: object, a: object, b: object, scale: float) -> None:
    """Make ``linear`` compute ``x W^T + bias + scale * x A^T B^T`` (its weight stays frozen)."""
    import torch

    base_forward = linear.forward  # type: ignore[attr-defined]

    def forward(x: torch.Tensor) -> torch.Tensor:
        return base_forward(x) + (x @ a.T @ b.T) * scale  # type: ignore[attr-defined]

    linear.forward = forward  # type: ignore[attr-defined]
