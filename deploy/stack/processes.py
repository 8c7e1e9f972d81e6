"""Process control for the stack's servers: spawn detached, recognise by pid, signal, stop.

A server is "ours" only if its pid is alive and runs in the server's working directory under
the stack dir, so a stale pid file that now names somebody else's process is never signalled.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from core.errors import StackError
from deploy.stack.paths import HOST, Paths

logger = logging.getLogger(__name__)

STOP_TIMEOUT_S = 30.0

# Children started by this process, so that they are reaped (no zombies) when a long-lived
# caller such as a test session runs both `up` and `down`.
_children: dict[int, subprocess.Popen[bytes]] = {}


def read_pid(pidfile: Path) -> int | None:
    """The pid in the first word of ``pidfile``, or None when there is none."""
    try:
        return int(pidfile.read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not; our own dead children are reaped here)."""
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def ours(pid: int, workdir: Path) -> bool:
    """Whether ``pid`` is a live process started by this stack (it runs in our workdir)."""
    if not alive(pid):
        return False
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd")).resolve() == workdir.resolve()
    except OSError:
        return False


def running_pid(paths: Paths, server: str) -> int | None:
    """The pid of our live ``server``, or None (also when the pid file is stale)."""
    candidates = [read_pid(paths.pidfile(server))]
    if server == "postgres":
        # pg_ctl forks the server; postmaster.pid knows it even if `up` did not record it.
        candidates.append(read_pid(paths.pg_data / "postmaster.pid"))
    for pid in candidates:
        if pid is not None and ours(pid, paths.workdir(server)):
            return pid
    return None


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on ``port`` of the stack's host."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def spawn(cmd: list[str], cwd: Path, out: Path, append: bool = True) -> int:
    """Start ``cmd`` detached (own session, no terminal), its output going to ``out``."""
    with out.open("ab" if append else "wb") as sink:
        child = subprocess.Popen(
            cmd,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _children[child.pid] = child
    return child.pid


def send_signal(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to ``pid``; a process already gone is not an error."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def wait_gone(pid: int, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for ``pid`` to exit; whether it did."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.1)
    return not alive(pid)


def terminate(pid: int) -> None:
    """SIGTERM, a grace period, then SIGKILL."""
    if not alive(pid):
        return
    send_signal(pid, signal.SIGTERM)
    if not wait_gone(pid, STOP_TIMEOUT_S):
        logger.warning("pid %d ignored SIGTERM for %.0f s; killing it", pid, STOP_TIMEOUT_S)
        send_signal(pid, signal.SIGKILL)
        wait_gone(pid, 5)


def tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` of a log, indented to follow an error message ("" if none)."""
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except FileNotFoundError:
        return ""
    return "\n    ".join(["", *text]) if text else ""


def run_step(
    cmd: list[str], what: str, log: Path, cwd: Path | None = None, see: Path | None = None
) -> None:
    """Run a set-up step quietly; on failure raise StackError naming the step and its log.

    ``see`` is a log that explains the failure better than the command's own output.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as sink:
        sink.write(f"\n$ {' '.join(cmd)}\n".encode())
        sink.flush()
        try:
            result = subprocess.run(
                cmd,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                check=False,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise StackError(f"{what} failed: {exc.filename} not found") from exc
    if result.returncode != 0:
        logs = f"{see} and {log}" if see else str(log)
        raise StackError(f"{what} failed (exit {result.returncode}); see {logs}{tail(see or log)}")


def wait_until(
    server: str, check: Callable[[], bool], paths: Paths, pid: int | None, timeout_s: float
) -> None:
    """Poll ``check`` until it says yes; StackError with the log's tail if ``pid`` dies first
    or ``timeout_s`` passes."""
    log = paths.log(server)
    deadline = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        if pid is not None and not alive(pid):
            paths.pidfile(server).unlink(missing_ok=True)
            jvm_out = tail(paths.kafka_out) if server == "kafka" else ""
            extra = f"\n  and {paths.kafka_out}{jvm_out}" if jvm_out else ""
            raise StackError(f"{server} exited during start-up; see {log}{tail(log)}{extra}")
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"; reported below
            last_error = exc
        time.sleep(0.25)
    raise StackError(
        f"{server} did not answer within {timeout_s:.0f} s ({last_error!r}); see {log}{tail(log)}"
    )
