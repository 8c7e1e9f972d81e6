"""Versioned SQL migrations: ``deploy/migrations/NNNN_name.sql``, applied once each, in order.

The version is the number before the first underscore (``0001``), so a file may be renamed
without running again. Applied versions are recorded in ``schema_migrations``; each migration
runs in its own transaction together with its record, so a failed one leaves nothing behind.
A session advisory lock serialises concurrent runners (an init container and a test, say).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from core.errors import ConfigError, StackError, TransientError
from core.settings import Settings

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Any constant shared by every runner; pg_advisory_lock takes a bigint ("warden" in ASCII).
_LOCK_KEY = 0x77617264656E


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations in ``directory``, ordered by version."""
    found: dict[str, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        version = path.stem.split("_", 1)[0]
        if not version.isdigit():
            raise StackError(f"migration {path} must be named NNNN_<name>.sql")
        if version in found:
            raise StackError(f"migrations {found[version].path} and {path} share version {version}")
        found[version] = Migration(version, path)
    return [found[version] for version in sorted(found, key=int)]


def apply(settings: Settings, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every migration not yet recorded; return the versions applied now."""
    import psycopg

    migrations = discover(directory)
    dsn = settings.postgres.dsn.get_secret_value()
    try:
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise TransientError(
            f"cannot connect to PostgreSQL for migrations (WARDEN_POSTGRES__DSN): {exc}"
        ) from exc
    except psycopg.ProgrammingError as exc:  # the DSN does not parse
        raise ConfigError(f"WARDEN_POSTGRES__DSN: {exc}") from exc

    applied: list[str] = []
    with conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for migration in migrations:
            if migration.version in done:
                continue
            try:
                with conn.transaction():
                    conn.execute(migration.path.read_bytes())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, applied_at) VALUES (%s, now())",
                        (migration.version,),
                    )
            except psycopg.Error as exc:
                raise StackError(f"migration {migration.path.name} failed: {exc}") from exc
            logger.debug("applied migration %s", migration.path.name)
            applied.append(migration.version)
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied
