"""The int8 encoder's sessions in a process of their own, for a process whose Python is busy.

In the scorer, the sessions' threads shared one interpreter lock with the event loop. ONNX
Runtime drops the lock while a text runs, but a session needs it back for every text (to hand
the result over and take the next), and while the event loop held it the session waited, up
to the switch interval each time: thread-state samples of a replay drain found the event loop
alone on the two cores in 9-11 % of the samples with texts waiting in the sessions' queue.
Here the sessions run in a child process (``python -m toxicity.encoder_process``) with an
interpreter of its own, and the two processes trade token ids and embeddings over pipes.

Same sessions (one thread each), same texts one at a time, same pooling: the embeddings are
byte for byte those of the threads in-process (``tests/unit/toxicity/test_encoder_process.py``).
:class:`ProcessRuns` has the interface of ``toxicity.encoder._Runs``: submit texts, each gets
its vector (or an error) and its ``done`` event set. If the child dies, every text waiting
and every text submitted after gets an error that says so: the caller fails loudly instead of
waiting forever (the scorer stops and is restarted, its batch not acknowledged).

Frames on both pipes: a header ``<BII`` (kind, count, body bytes) and a body.
- parent -> child, ``TEXTS``: per text ``<IH`` (job id, tokens), then each input the session
  takes (in the order the child announced) as ``tokens`` int32 values;
- child -> parent, ``READY``: JSON ``{"inputs": [...]}`` once the sessions are loaded;
  ``VECTORS``: ``count`` job ids (uint32), then ``count`` float32 vectors; ``ERROR``: a job id
  (uint32) and the error, UTF-8.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Protocol

import numpy as np

logger = logging.getLogger(__name__)

HEADER = struct.Struct("<BII")
TEXT = struct.Struct("<IH")
READY, TEXTS, VECTORS, ERROR = 0, 1, 2, 3
# How long the parent waits for the child to load its sessions (seconds).
START_TIMEOUT_S = 120.0
# How long closing waits for the child to exit before killing it (seconds).
STOP_TIMEOUT_S = 5.0
# Token ids travel as int32 (a vocabulary is far below 2**31); the sessions take int64.
MAX_TOKENS = 0xFFFF


class Job(Protocol):
    """What the runner reads and fills in (``toxicity.encoder._Text``)."""

    feed: dict[str, np.ndarray]
    vector: np.ndarray | None
    error: BaseException | None
    done: threading.Event


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    """``size`` bytes, or None at the end of the stream (a partial frame counts as the end)."""
    data = stream.read(size)
    if data is None or len(data) < size:
        return None
    return bytes(data)


def _read_frame(stream: IO[bytes]) -> tuple[int, int, bytes] | None:
    header = _read_exactly(stream, HEADER.size)
    if header is None:
        return None
    kind, count, size = HEADER.unpack(header)
    body = _read_exactly(stream, size) if size else b""
    if body is None:
        return None
    return kind, count, body


def _frame(kind: int, count: int, body: bytes) -> bytes:
    return HEADER.pack(kind, count, len(body)) + body


class EncoderProcessError(RuntimeError):
    """The encoder's process is gone (or never started): its texts cannot be embedded."""


class ProcessRuns:
    """``workers`` int8 sessions on ``model_path`` in a child process, fed from any thread."""

    def __init__(self, model_path: Path, workers: int) -> None:
        env = dict(os.environ)
        # The child imports this package from where the parent found it.
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self._process = subprocess.Popen(  # noqa: S603 - our own module, no shell
            [sys.executable, "-m", "toxicity.encoder_process", str(model_path), str(workers)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._stdin, self._stdout = self._process.stdin, self._process.stdout
        self._jobs: dict[int, Job] = {}
        self._next_id = 0
        self._lock = threading.Lock()  # jobs, ids and the failure
        self._write_lock = threading.Lock()
        self._failure: EncoderProcessError | None = None
        self._closing = False
        self.input_names = self._wait_ready()
        self._reader = threading.Thread(target=self._read, name="encoder-process", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._process.pid

    def _wait_ready(self) -> list[str]:
        # A child that cannot load its sessions exits: its stderr (inherited) says why.
        timer = threading.Timer(START_TIMEOUT_S, self._process.kill)
        timer.start()
        try:
            frame = _read_frame(self._stdout)
        finally:
            timer.cancel()
        if frame is None or frame[0] != READY:
            code = self._process.wait()
            raise EncoderProcessError(f"the encoder process did not start (exit code {code})")
        return list(json.loads(frame[2])["inputs"])

    def submit(self, texts: Sequence[Job]) -> None:
        if not texts:
            return
        parts: list[bytes] = []
        with self._lock:
            failure = self._failure
            if failure is None:
                for text in texts:
                    job_id = self._next_id
                    self._next_id = (self._next_id + 1) & 0xFFFFFFFF
                    self._jobs[job_id] = text
                    arrays = [text.feed[name].reshape(-1) for name in self.input_names]
                    length = min(int(arrays[0].shape[0]), MAX_TOKENS)
                    parts.append(TEXT.pack(job_id, length))
                    parts.extend(a[:length].astype(np.int32).tobytes() for a in arrays)
        if failure is not None:
            for text in texts:
                text.error = failure
                text.done.set()
            return
        frame = _frame(TEXTS, len(texts), b"".join(parts))
        try:
            with self._write_lock:
                self._stdin.write(frame)
                self._stdin.flush()
        except (OSError, ValueError) as exc:  # a closed pipe: the child is gone
            self._fail(f"the encoder process cannot take texts ({exc})")

    def _read(self) -> None:
        stdout = self._stdout
        while True:
            frame = _read_frame(stdout)
            if frame is None:
                break
            kind, count, body = frame
            if kind == VECTORS:
                ids = np.frombuffer(body, dtype=np.uint32, count=count)
                vectors = np.frombuffer(body, dtype=np.float32, offset=4 * count)
                vectors = vectors.reshape(count, -1)
                with self._lock:
                    jobs = [self._jobs.pop(int(i), None) for i in ids]
                for job, vector in zip(jobs, vectors, strict=True):
                    if job is not None:
                        job.vector = vector
                        job.done.set()
            elif kind == ERROR:
                (job_id,) = struct.unpack_from("<I", body)
                with self._lock:
                    job = self._jobs.pop(job_id, None)
                if job is not None:
                    job.error = RuntimeError(body[4:].decode("utf-8", "replace"))
                    job.done.set()
        code = self._process.wait()
        if not self._closing:
            logger.error("the encoder process %d exited (code %s)", self._process.pid, code)
        self._fail(f"the encoder process exited (code {code})")

    def _fail(self, why: str) -> None:
        with self._lock:
            self._failure = self._failure or EncoderProcessError(why)
            jobs, self._jobs = list(self._jobs.values()), {}
        for job in jobs:
            job.error = self._failure
            job.done.set()

    def close(self) -> None:
        """Stop the child once it has run what it was given (its stdin closes); killed if it
        has not exited ``STOP_TIMEOUT_S`` later. Does not wait: the reader thread reaps it
        (a model swap may drop the last reference on the event loop)."""
        self._closing = True
        try:
            with self._write_lock:
                self._stdin.close()
        except OSError:
            pass
        timer = threading.Timer(STOP_TIMEOUT_S, self._kill)
        timer.daemon = True
        timer.start()

    def _kill(self) -> None:
        if self._process.poll() is None:
            logger.warning("the encoder process %d did not stop; killing it", self._process.pid)
            self._process.kill()


def _serve(model_path: str, workers: int) -> None:
    """The child: load the sessions, announce their inputs, run texts until stdin closes.

    The texts run on the in-process path's own queue and session threads
    (``toxicity.encoder._Runs``); a frame's embeddings go back once all of its texts are done
    (a call waits for all of its texts anyway): a frame or two per call, not one per text, each
    of which would wake a thread on both sides."""
    from toxicity.encoder import _Runs, _Text, ort_session

    # Ctrl-C in a terminal reaches the whole process group: the worker stops on it and closes
    # this process's stdin, which is how this process stops (after the texts it was given).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Frames go to the parent on the original stdout; anything else printed goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    stdin = sys.stdin.buffer
    runs = _Runs([ort_session(Path(model_path)) for _ in range(max(1, workers))])
    names = runs.input_names
    out.write(_frame(READY, 0, json.dumps({"inputs": names}).encode()))
    out.flush()
    # Each frame's jobs, in the order they came: the sessions take texts in that order too.
    frames: queue.SimpleQueue[list[tuple[int, _Text]] | None] = queue.SimpleQueue()

    def write() -> None:
        while (jobs := frames.get()) is not None:
            # Last first: the sessions take a frame's texts in order, so by the time its last
            # text is done the others mostly are, and this thread wakes once or twice a frame
            # instead of once a text (each time taking the lock from the sessions).
            for _, text in reversed(jobs):
                text.done.wait()
            done: list[tuple[int, np.ndarray]] = []
            for job_id, text in jobs:
                if text.vector is not None:
                    done.append((job_id, text.vector))
                else:
                    message = f"{type(text.error).__name__}: {text.error}".encode()
                    out.write(_frame(ERROR, 1, struct.pack("<I", job_id) + message))
            if done:
                ids = np.fromiter((i for i, _ in done), dtype=np.uint32, count=len(done))
                matrix = np.stack([v for _, v in done]).astype(np.float32, copy=False)
                out.write(_frame(VECTORS, len(done), ids.tobytes() + matrix.tobytes()))
            out.flush()

    writer = threading.Thread(target=write, name="writer")
    writer.start()
    while (frame := _read_frame(stdin)) is not None:
        kind, count, body = frame
        if kind != TEXTS or not count:
            continue
        offset, jobs = 0, []
        for _ in range(count):
            job_id, length = TEXT.unpack_from(body, offset)
            offset += TEXT.size
            feed = {}
            for name in names:
                values = np.frombuffer(body, dtype=np.int32, count=length, offset=offset)
                feed[name] = values.astype(np.int64).reshape(1, length)
                offset += 4 * length
            jobs.append((job_id, _Text(feed, length)))
        runs.submit([text for _, text in jobs])
        frames.put(jobs)
    frames.put(None)  # the texts given run to the end and go back before this process ends
    writer.join()
    runs.close()


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]))
