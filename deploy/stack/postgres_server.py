"""The local PostgreSQL: initdb once, ``pg_ctl start``/``stop``, the app's role and database.

PostgreSQL refuses to run as root; as root its tools run as the ``postgres`` OS user, and the
data may live outside the stack dir (see ``deploy.stack.paths.pg_root``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from core.errors import StackError
from core.settings import Settings, StackSettings
from deploy.stack.install import pg_bindir
from deploy.stack.paths import HOST, Paths, is_root
from deploy.stack.processes import STOP_TIMEOUT_S, read_pid, run_step, terminate

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root; as root, run its tools as the postgres OS user."""
    return ["runuser", "-u", "postgres", "--", *cmd] if is_root() else cmd


def _chown_to_postgres(*directories: Path) -> None:
    if not is_root():
        return
    import pwd

    user = pwd.getpwnam("postgres")
    for directory in directories:
        os.chown(directory, user.pw_uid, user.pw_gid)


def start(stack: StackSettings, paths: Paths) -> int | None:
    """initdb once, then start the server and wait until it accepts connections; its pid."""
    bindir = pg_bindir()
    if bindir is None:
        raise StackError("PostgreSQL server binaries (initdb, pg_ctl) not found")
    for directory in (paths.pg_root, paths.pg_socket):
        directory.mkdir(parents=True, exist_ok=True)
    _chown_to_postgres(paths.pg_root, paths.pg_socket)
    pointer = paths.root / "postgres"
    if paths.pg_root != pointer and not pointer.is_symlink() and not pointer.exists():
        # The data had to live elsewhere (see pg_root); leave a signpost in the stack dir.
        pointer.symlink_to(paths.pg_root, target_is_directory=True)
    if not (paths.pg_data / "PG_VERSION").exists():
        run_step(
            _as_postgres(
                [
                    str(bindir / "initdb"),
                    "--pgdata",
                    str(paths.pg_data),
                    "--username",
                    "postgres",
                    "--auth",
                    "trust",
                    "--encoding",
                    "UTF8",
                    "--no-locale",
                    "--no-sync",
                    "--no-instructions",
                ]
            ),
            f"initdb {paths.pg_data}",
            paths.install_log,
            cwd=paths.pg_root,
        )
    options = " ".join(
        [
            f"-c listen_addresses={HOST}",
            f"-p {stack.postgres_port}",
            f"-k {paths.pg_socket}",
            # A local, disposable database: speed over surviving a power cut. A clean
            # `stack down` still writes everything to disk.
            "-c fsync=off",
            "-c synchronous_commit=off",
            "-c full_page_writes=off",
        ]
    )
    run_step(
        _as_postgres(
            [
                str(bindir / "pg_ctl"),
                "start",
                "--pgdata",
                str(paths.pg_data),
                "--log",
                str(paths.pg_log),
                # pg_ctl notices a server that dies during start-up and says so at once.
                "--wait",
                "--timeout",
                str(int(START_TIMEOUT_S)),
                "--silent",
                "-o",
                options,
            ]
        ),
        "pg_ctl start",
        paths.install_log,
        cwd=paths.pg_root,
        see=paths.pg_log,
    )
    return read_pid(paths.pg_data / "postmaster.pid")


def _admin_dsn(stack: StackSettings) -> str:
    return f"host={HOST} port={stack.postgres_port} user=postgres dbname=postgres connect_timeout=2"


def answers(stack: StackSettings) -> bool:
    """Whether the server accepts a connection and a query (raises while it does not)."""
    import psycopg

    with psycopg.connect(_admin_dsn(stack)) as conn:
        conn.execute("SELECT 1")
    return True


def local_dsn(settings: Settings) -> tuple[str, str, str]:
    """(dsn, user, database) of the configured DSN, pointed at the local server."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    info = conninfo_to_dict(settings.postgres.dsn.get_secret_value())
    user = str(info.get("user") or "warden")
    dbname = str(info.get("dbname") or user)
    dsn = make_conninfo(host=HOST, port=settings.stack.postgres_port, user=user, dbname=dbname)
    return dsn, user, dbname


def ensure_database(stack: StackSettings, user: str, dbname: str) -> None:
    """Create the login role ``user`` and its database ``dbname`` unless they exist."""
    import psycopg
    from psycopg import sql

    role, database = sql.Identifier(user), sql.Identifier(dbname)
    with psycopg.connect(_admin_dsn(stack), autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
        if found is None:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
            logger.debug("created role %s", user)
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if found is None:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(database, role))
            logger.debug("created database %s", dbname)


def stop(paths: Paths, pid: int) -> None:
    """``pg_ctl stop --mode fast``, then make sure ``pid`` is gone."""
    bindir = pg_bindir()
    if bindir is not None:
        with contextlib.suppress(StackError):
            run_step(
                _as_postgres(
                    [
                        str(bindir / "pg_ctl"),
                        "stop",
                        "--pgdata",
                        str(paths.pg_data),
                        "--mode",
                        "fast",
                        "--timeout",
                        str(int(STOP_TIMEOUT_S)),
                    ]
                ),
                "pg_ctl stop",
                paths.install_log,
                cwd=paths.pg_root,
            )
    terminate(pid)
