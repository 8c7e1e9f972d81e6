"""The int8 sessions in a process of their own: the same embeddings, byte for byte, as the
sessions in threads, and a child that dies fails its callers instead of leaving them waiting."""

from __future__ import annotations

import gc
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from core.settings import ModelSettings, Settings
from devkit.chatgen import load_messages
from toxicity.encoder import Encoder
from toxicity.encoder_process import EncoderProcessError, ProcessRuns

TEXTS = [
    "gg wp",
    "GG WP",  # the same token ids: one run
    "",
    "you are trash lol",
    "LUL LUL LUL",
    "ça va? 日本語のチャット 🎉🎉",
    "spam " * 400,  # truncated at the encoder's max length
    "gg wp",
]


def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"condition not met in {seconds} s")


@pytest.fixture(scope="module")
def threads() -> Encoder:
    return Encoder.load(None, quantize="int8", workers=2, id_cache_size=0)


@pytest.fixture
def process() -> Encoder:
    return Encoder.load(None, quantize="int8", workers=2, id_cache_size=0, process=True)


def chat(count: int, seed: int) -> list[str]:
    return [m["text"] for m in load_messages(count, seed=seed, unique=True)]


def test_the_process_embeds_as_the_threads_do_byte_for_byte(
    threads: Encoder, process: Encoder
) -> None:
    assert isinstance(process._runs, ProcessRuns)
    texts = TEXTS + chat(300, seed=3)
    assert np.array_equal(process.embed(texts), threads.embed(texts))
    # Texts with the same token ids ran once, as in-process.
    assert process.texts_run + process.texts_reused == len(texts)
    assert process.texts_run < len(texts)


def test_calls_from_two_threads_share_the_process(threads: Encoder, process: Encoder) -> None:
    first, second = chat(200, seed=4), chat(200, seed=5)
    second[:50] = first[:50]  # texts both calls need
    out: dict[str, np.ndarray] = {}
    callers = [
        threading.Thread(target=lambda: out.__setitem__("first", process.embed(first))),
        threading.Thread(target=lambda: out.__setitem__("second", process.embed(second))),
    ]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(60)
        assert not caller.is_alive()
    assert np.array_equal(out["first"], threads.embed(first))
    assert np.array_equal(out["second"], threads.embed(second))


def test_a_dead_process_fails_the_waiting_call_and_every_later_one(process: Encoder) -> None:
    runs = process._runs
    assert isinstance(runs, ProcessRuns)
    failures: list[BaseException] = []

    def embed() -> None:
        try:
            process.embed(chat(3000, seed=6))  # seconds of work: still running when killed
        except EncoderProcessError as exc:
            failures.append(exc)

    caller = threading.Thread(target=embed)
    caller.start()
    time.sleep(0.3)
    os.kill(runs.pid, signal.SIGKILL)
    caller.join(30)
    assert not caller.is_alive()
    assert len(failures) == 1 and "exited (code -9)" in str(failures[0])
    started = time.monotonic()
    with pytest.raises(EncoderProcessError, match="exited"):
        process.embed(["a line never embedded before"])
    assert time.monotonic() - started < 1.0


def test_the_process_ends_with_its_encoder() -> None:
    encoder = Encoder.load(None, quantize="int8", workers=1, process=True)
    runs = encoder._runs
    assert isinstance(runs, ProcessRuns)
    encoder.embed(["hello"])
    assert os.path.exists(f"/proc/{runs.pid}")
    del encoder
    gc.collect()
    until(lambda: runs._process.poll() is not None)
    assert runs._process.returncode == 0  # it saw its input close and stopped


def test_ctrl_c_leaves_the_process_to_its_worker(threads: Encoder, process: Encoder) -> None:
    """SIGINT reaches a terminal's whole process group: the worker decides when to stop."""
    runs = process._runs
    assert isinstance(runs, ProcessRuns)
    os.kill(runs.pid, signal.SIGINT)
    time.sleep(0.3)
    assert runs._process.poll() is None
    texts = chat(20, seed=7)
    assert np.array_equal(process.embed(texts), threads.embed(texts))


def test_a_child_that_cannot_load_says_so(tmp_path: Path) -> None:
    with pytest.raises(EncoderProcessError, match="did not start"):
        ProcessRuns(tmp_path / "missing.onnx", 1)


def test_only_the_scorers_workers_run_the_encoder_in_a_process_unless_told() -> None:
    from scorers.app import worker_model_settings

    assert ModelSettings().encoder_process is None  # `warden score`, the explainer: threads
    settings = Settings()
    assert worker_model_settings(settings).encoder_process is True
    told = settings.model_copy(update={"model": ModelSettings(encoder_process=False)})
    assert worker_model_settings(told).encoder_process is False
