"""Schema migrations of the store (Alembic), configured in code: no alembic.ini is needed at run time.

`upgrade(engine)` runs on every `Store()` open:

- a new (empty) database gets today's tables (`create_all`) and is stamped at the head revision;
- a database with an `alembic_version` table is upgraded to the head;
- a database made before migrations existed (tables but no `alembic_version`: data directories of the releases
  that used `create_all` + `_add_missing_columns`) is adopted: the baseline revision creates only the tables it
  lacks, the later revisions add only the columns it lacks, and the database is stamped on the way.

Two processes opening one database at once are serialized (an advisory lock on PostgreSQL, a file lock beside a
SQLite file). A new revision: `python -m localrag.index.migrations revision -m "what changes"` writes a file into
`versions/`; write its `upgrade()` by hand (portable `op.*` calls; SQLite needs `op.batch_alter_table` for anything
but adding a column) and add a test that an older database opens.
"""

from __future__ import annotations

import fcntl
import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

HERE = Path(__file__).resolve().parent
MIGRATION_LOCK_KEY = 0x6C72_6D67  # "lrmg": the advisory lock that serializes migrations on PostgreSQL


class MigrationError(RuntimeError):
    """The database cannot be brought to this release's schema; the message says what to do."""


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic Config pointing at this package's scripts (env.py uses `connection` when one is given)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise MigrationError(f"the migration scripts have {len(heads)} heads {heads}; merge them into one")
    return heads[0]


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection on which this process alone migrates the database."""
    lock_file: Any = None
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        lock_file = open(f"{engine.url.database}.migrate.lock", "a+")  # noqa: SIM115 - closed below
        fcntl.flock(lock_file, fcntl.LOCK_EX)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
                conn.commit()
            try:
                yield conn
            finally:
                if engine.dialect.name == "postgresql":
                    conn.rollback()
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
                    conn.commit()
    finally:
        if lock_file is not None:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
            lock_file.close()


def upgrade(engine: Engine, metadata: Any) -> str:
    """Bring the database to the head revision (see the module doc); returns what was done:
    "current", "created", "upgraded", "adopted", or "repaired" (at the head, but tables that had been dropped by hand
    were created again)."""
    head = head_revision()
    wanted = set(metadata.tables)
    with engine.connect() as conn:  # the common case, without any lock: already at the head, nothing missing
        tables = set(inspect(conn).get_table_names())
        if "alembic_version" in tables and wanted <= tables and current_revision(conn) == head:
            return "current"
    with _migration_lock(engine) as conn:
        tables = set(inspect(conn).get_table_names())
        if "alembic_version" in tables:
            rev = current_revision(conn)
            if rev == head:
                if wanted <= tables:
                    return "current"
                metadata.create_all(conn)  # at the head but tables were dropped by hand: create them again
                conn.commit()
                return "repaired"
            known = {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
            if rev is not None and rev not in known:
                raise MigrationError(
                    f"the database is at schema revision {rev}, which this release does not know (it was written "
                    "by a newer localrag); upgrade localrag, or open another database"
                )
            done = "upgraded"
        elif tables & set(metadata.tables):
            done = "adopted"  # made by a release before migrations: the revisions create only what is missing
        else:
            metadata.create_all(conn)
            command.stamp(alembic_config(conn), head)
            conn.commit()
            return "created"
        command.upgrade(alembic_config(conn), "head")
        conn.commit()
        return done


def main(argv: list[str] | None = None) -> None:
    """`python -m localrag.index.migrations revision -m MESSAGE`: a new, empty revision file in versions/."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m localrag.index.migrations")
    sub = parser.add_subparsers(dest="cmd", required=True)
    rev = sub.add_parser("revision", help="write a new revision file into versions/")
    rev.add_argument("-m", "--message", required=True)
    args = parser.parse_args(argv)
    if args.cmd == "revision":
        command.revision(alembic_config(), message=args.message)
