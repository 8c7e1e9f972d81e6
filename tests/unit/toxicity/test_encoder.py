"""The int8 encoder stays close to fp32 (per-channel weights), and embeddings are normalised."""

from __future__ import annotations

import gc
import json
import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from core.settings import ModelSettings
from toxicity.encoder import (
    Encoder,
    build_difference,
    encoder_build_of,
    file_sha256,
    mean_pool,
    resolve_encoder,
    toolchain,
)

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


@pytest.fixture(scope="module")
def int8_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder the int8 encoder is built into (by the first test that loads it)."""
    return tmp_path_factory.mktemp("cache")


def test_int8_stays_close_to_fp32(fp32: Encoder, int8_cache: Path) -> None:
    int8 = Encoder.load(None, quantize="int8", cache_dir=int8_cache)
    assert int8.backend == "int8"
    vectors = int8.embed(SENTENCES)
    cosine = np.sum(vectors * fp32.embed(SENTENCES), axis=1)
    assert cosine.mean() > 0.98, cosine
    assert cosine.min() > 0.95, cosine
    # A message's int8 embedding (and so its score) does not depend on its batch-mates (an
    # encoder that keeps nothing between calls: it runs the text again).
    alone = Encoder.load(None, quantize="int8", cache_dir=int8_cache, id_cache_size=0)
    assert np.array_equal(vectors[3], alone.embed([SENTENCES[3]])[0])
    assert alone.texts_run == 1


def test_int8_runs_the_encoder_once_per_token_ids(int8_cache: Path) -> None:
    """The uncased tokenizer reads LUL, lul and Lul alike: one encoder run for all three."""
    int8 = Encoder.load(None, quantize="int8", cache_dir=int8_cache, id_cache_size=2)
    first = int8.embed(["LUL", "lul", "gg", "LUL"])
    assert (int8.texts_run, int8.texts_reused) == (2, 2)
    assert np.array_equal(first[0], first[1]) and np.array_equal(first[0], first[3])
    second = int8.embed(["Lul", "GG"])
    assert (int8.texts_run, int8.texts_reused) == (2, 4)
    assert np.array_equal(second, first[[0, 2]])
    # Bounded: a third token sequence evicts the least recently used (lul), which then runs
    # again, to the same embedding.
    int8.embed(["gg", "poggers"])
    third = int8.embed(["lul"])
    assert (int8.texts_run, int8.texts_reused) == (4, 5)
    assert np.array_equal(third[0], first[0])


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


def test_the_int8_path_tokenizes_as_transformers_does_without_importing_it() -> None:
    from toxicity.encoder import IdsTokenizer, hf_tokenizer

    _, source = resolve_encoder(None)
    assert isinstance(source, Path)
    ids = IdsTokenizer.load(source, 64)
    assert ids is not None
    reference = hf_tokenizer(source, True)
    texts = [
        *SENTENCES[:10],
        " ",
        "LUL LUL LUL KEKW 🤣🤣 PogChamp",
        "ＦＵＬＬ ＷＩＤＴＨ and Ünïcödé café naïve",
        "k\u200by\u200bs",
        "@user gg wp",
        "word " * 200,  # truncated: special tokens included in the 64
        "中文字符 and ひらがな",
        "https://example.com/a?b=c&d=e",
    ]
    ours = ids(texts, truncation=True, max_length=64)
    theirs = reference(texts, truncation=True, max_length=64)
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        assert ours[name] == theirs[name], name
    assert len(ours["input_ids"][texts.index("word " * 200)]) == 64
    assert IdsTokenizer.load("sentence-transformers/all-MiniLM-L6-v2", 64) is None  # hub name


def test_loading_the_int8_encoder_does_not_import_torch(int8_cache: Path) -> None:
    import subprocess
    import sys

    Encoder.load(None, quantize="int8", cache_dir=int8_cache)  # built (needs torch) or found
    # A fresh interpreter: this test process has long imported torch.
    code = (
        "import sys; from pathlib import Path; from toxicity.encoder import Encoder; "
        f"e = Encoder.load(None, quantize='int8', workers=1, cache_dir=Path({str(int8_cache)!r})); "
        "e.embed(['gg']); print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.split()[-2:] == ["False", "False"]


def test_the_int8_file_a_model_learnt_from_is_recorded_and_a_different_one_is_named(
    fp32: Encoder, int8_cache: Path
) -> None:
    from importlib.metadata import version

    int8 = Encoder.load(None, quantize="int8", workers=1, cache_dir=int8_cache)
    (built,) = int8_cache.glob("encoders/*/model.*7bit*.onnx")
    assert int8.build_sha256 == file_sha256(built)
    record = encoder_build_of(int8)
    assert record["int8_sha256"] == int8.build_sha256
    assert record["toolchain"]["onnxruntime"] == version("onnxruntime")
    assert set(record["toolchain"]) == {"torch", "transformers", "onnx", "onnxruntime"}
    assert build_difference(record, int8) is None
    assert build_difference({}, int8) is None  # a model from before builds were recorded
    assert encoder_build_of(fp32) == {}
    older = {
        "int8_sha256": "0" * 64,
        "recipe": "ort-dynamic-qint8-per-channel-v1",
        "toolchain": {**record["toolchain"], "torch": "2.4.0"},
    }
    assert build_difference(older, fp32) is None  # fp32 runs no int8 file
    message = build_difference(older, int8)
    assert message is not None
    assert f"torch 2.4.0 here {toolchain()['torch']}" in message
    assert "recipe ort-dynamic-qint8-per-channel-v1 here" in message
    assert "onnxruntime" not in message  # only what differs is named
    assert "000000000000" in message and int8.build_sha256[:12] in message


def test_a_scorer_says_when_its_int8_file_is_not_the_models(
    model_factory: Callable[..., Path],
    int8_cache: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from toxicity.artifacts import METADATA_FILE
    from toxicity.hybrid import HybridScorer

    source = model_factory(name="build")
    folder = tmp_path / source.name
    shutil.copytree(source, folder)
    data = json.loads((folder / METADATA_FILE).read_text())
    data["encoder"]["build"] = {"int8_sha256": "f" * 64, "toolchain": {"onnx": "1.16.0"}}
    (folder / METADATA_FILE).write_text(json.dumps(data))
    settings = ModelSettings(kind="hybrid", quantize="int8", encoder_workers=1)
    with caplog.at_level(logging.WARNING, logger="toxicity.hybrid"):
        scorer = HybridScorer.load(folder, settings, cache_dir=int8_cache)
    assert scorer.meta.encoder_build["int8_sha256"] == "f" * 64
    (warning,) = [r.getMessage() for r in caplog.records if "int8 encoder file" in r.getMessage()]
    assert f"onnx 1.16.0 here {toolchain()['onnx']}" in warning
    caplog.clear()
    # The model's own file: nothing to say.
    data["encoder"]["build"] = encoder_build_of(scorer.encoder)
    (folder / METADATA_FILE).write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING, logger="toxicity.hybrid"):
        HybridScorer.load(folder, settings, cache_dir=int8_cache)
    assert not [r for r in caplog.records if "int8 encoder file" in r.getMessage()]


def test_one_session_per_core_the_process_may_run_on() -> None:
    import os
    import subprocess
    import sys

    # Pinned to one core (as taskset or a container's cpuset does): one session, whatever the
    # host's core count.
    out = subprocess.run(
        [sys.executable, "-c", "from toxicity.encoder import default_workers as d; print(d())"],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}),
    )
    assert out.stdout.strip() == "1"


def test_no_more_sessions_than_the_cgroups_cpu_quota(tmp_path: Path) -> None:
    import os

    from toxicity.encoder import default_workers

    cores = len(os.sched_getaffinity(0))
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("max 100000\n")  # no quota
    assert default_workers(cpu_max) == cores
    cpu_max.write_text("50000 100000\n")  # half a core: still one session
    assert default_workers(cpu_max) == 1
    cpu_max.write_text("150000 100000\n")  # 1.5 cores: two, if the process may use two
    assert default_workers(cpu_max) == min(cores, 2)
    cpu_max.write_text("garbage\n")
    assert default_workers(cpu_max) == cores
    assert default_workers(tmp_path / "missing") == cores  # no cgroup v2


class CharTokenizer:
    """Token ids from characters (lower case, as an uncased tokenizer reads them)."""

    def __call__(self, texts: Any, *, truncation: bool = True, max_length: int = 128) -> Any:
        ids = [[ord(c) for c in text.lower()[:max_length]] for text in texts]
        return {"input_ids": ids, "attention_mask": [[1] * len(row) for row in ids]}


class FakeSession:
    """An ONNX Runtime session's surface: a text's "hidden states" are its token ids. Runs of
    a text that contains ``hold`` wait until the test releases them; ``fail`` fails."""

    def __init__(self) -> None:
        self.ran: list[tuple[int, ...]] = []
        self.holding = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()

    def get_inputs(self) -> list[Any]:
        return [SimpleNamespace(name="input_ids"), SimpleNamespace(name="attention_mask")]

    def run(self, names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        ids = tuple(int(i) for i in feed["input_ids"][0])
        with self.lock:
            self.ran.append(ids)
        text = "".join(map(chr, ids))
        if "hold" in text:
            self.holding.set()
            assert self.release.wait(10)
        if "fail" in text:
            raise RuntimeError(f"cannot run {text!r}")
        hidden = np.zeros((1, len(ids), 4), dtype=np.float32)
        hidden[0, :, 0] = ids
        hidden[0, :, 1] = len(ids)
        return [hidden]


def fake_int8(sessions: list[FakeSession], id_cache_size: int = 100) -> Encoder:
    return Encoder(
        encoder_id="fake",
        source="fake",
        backend="int8",
        tokenizer=CharTokenizer(),
        session=sessions[0],
        batch_size=8,
        max_length=32,
        weights_hash="0" * 64,
        more_sessions=sessions[1:],
        id_cache_size=id_cache_size,
    )


def expected(text: str) -> np.ndarray:
    hidden = np.zeros((1, len(text), 4), dtype=np.float32)
    hidden[0, :, 0] = [ord(c) for c in text.lower()]
    hidden[0, :, 1] = len(text)
    return mean_pool(hidden, np.ones((1, len(text)), dtype=np.int64))[0]


def until(condition: Callable[[], bool]) -> None:
    """Wait up to 5 s for ``condition``; fail if it never holds."""
    for _ in range(500):
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in 5 s")


def encoder_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("encoder_")}


def test_two_calls_at_once_share_the_sessions_and_a_text_runs_once() -> None:
    """The scorer prepares one batch while the sessions run the one before: the second call's
    texts run beside the first's, and a text both need runs once, for both."""
    sessions = [FakeSession(), FakeSession()]
    encoder = fake_int8(sessions)
    first: list[np.ndarray] = []
    second: list[np.ndarray] = []
    one = threading.Thread(target=lambda: first.append(encoder.embed(["hold on", "gg"])))
    one.start()
    until(lambda: any(s.holding.is_set() for s in sessions))  # "hold on" is running
    # gg done or running, "hold on" held: the second call queues only its new line, which
    # the free session runs while the first call still waits.
    two = threading.Thread(
        target=lambda: second.append(encoder.embed(["GG", "hold on", "new line"]))
    )
    two.start()
    new_line = tuple(map(ord, "new line"))
    until(lambda: any(new_line in s.ran for s in sessions))
    assert first == []
    for session in sessions:
        session.release.set()
    for caller in (one, two):
        caller.join(10)
        assert not caller.is_alive()
    ran = [ids for s in sessions for ids in s.ran]
    assert sorted(ran) == sorted(tuple(map(ord, t)) for t in ("hold on", "gg", "new line"))
    assert (encoder.texts_run, encoder.texts_reused) == (3, 2)
    second_rows = second[0]
    for text, vector in zip(["GG", "hold on", "new line"], second_rows, strict=True):
        assert np.array_equal(vector, expected(text))
    assert np.array_equal(first[0][0], second_rows[1])
    assert np.array_equal(first[0][1], second_rows[0])


def test_a_failed_run_fails_the_call_and_runs_again_next_time() -> None:
    session = FakeSession()
    encoder = fake_int8([session])
    with pytest.raises(RuntimeError, match="cannot run 'fail me'"):
        encoder.embed(["fine", "fail me"])
    with pytest.raises(RuntimeError, match="cannot run 'fail me'"):
        encoder.embed(["fail me"])  # not left as running, nor cached
    assert session.ran.count(tuple(map(ord, "fail me"))) == 2
    assert np.array_equal(encoder.embed(["fine"])[0], expected("fine"))  # the sessions go on


def test_the_sessions_threads_end_with_their_encoder() -> None:
    before = encoder_threads()
    encoder = fake_int8([FakeSession(), FakeSession()])
    encoder.embed(["hello"])
    mine = encoder_threads() - before
    assert len(mine) == 2
    del encoder
    gc.collect()
    for thread in mine:
        thread.join(5)
    assert not any(t.is_alive() for t in mine)
