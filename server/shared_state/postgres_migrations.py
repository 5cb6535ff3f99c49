"""The PostgreSQL schema, as numbered migrations applied in order at start.

Each worker runs :func:`migrate` when it starts; an advisory lock makes two workers starting at
once apply each migration exactly once. ``tingshuo_schema`` records what was applied, so a later
tingshuo adds migrations at the end of :data:`MIGRATIONS` and never edits one that shipped.
"""

from __future__ import annotations

from typing import Any

MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (1, "user memory: facts and conversation summaries", """
        CREATE TABLE memory_facts (
            id BIGSERIAL PRIMARY KEY,
            user_id TEXT NOT NULL,
            text TEXT NOT NULL,
            norm TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            UNIQUE (user_id, norm)
        );
        CREATE INDEX memory_facts_by_user ON memory_facts (user_id, created_at);
        CREATE TABLE memory_summaries (
            id BIGSERIAL PRIMARY KEY,
            user_id TEXT NOT NULL,
            session_id TEXT NOT NULL,
            text TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            UNIQUE (user_id, session_id)
        );
        CREATE INDEX memory_summaries_by_user ON memory_summaries (user_id, created_at);
    """),
)

MIGRATION_LOCK = 0x74696E6773687530
"""pg_advisory_xact_lock key ("tingshu0"): one worker migrates while the others wait."""


class SchemaTooNew(RuntimeError):
    pass


async def migrate(conn: Any) -> list[int]:
    """Applies the migrations this database lacks, in one transaction; returns their numbers."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute("CREATE TABLE IF NOT EXISTS tingshuo_schema ("
                           "version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
                           "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        applied = {row["version"] for row in await conn.fetch("SELECT version FROM tingshuo_schema")}
        known = {number for number, _, _ in MIGRATIONS}
        if unknown := applied - known:
            raise SchemaTooNew(f"the database has schema migrations {sorted(unknown)} that this tingshuo does not "
                               f"know (it knows up to {max(known)}): run the newer tingshuo, or another database")
        done = []
        for number, description, sql in MIGRATIONS:
            if number in applied:
                continue
            await conn.execute(sql)
            await conn.execute("INSERT INTO tingshuo_schema (version, description) VALUES ($1, $2)",
                               number, description)
            done.append(number)
        return done
