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
    (2, "data stage: recorded conversations, turns, audio", """
        CREATE TABLE data_conversations (
            id TEXT PRIMARY KEY,
            source TEXT NOT NULL,
            started_at DOUBLE PRECISION NOT NULL,
            user_id TEXT NOT NULL,
            persona_id TEXT NOT NULL,
            persona_version TEXT NOT NULL,
            instructions TEXT NOT NULL,
            adapter TEXT NOT NULL,
            tools TEXT NOT NULL,
            title TEXT NOT NULL
        );
        CREATE INDEX data_conversations_by_user ON data_conversations (user_id);
        CREATE INDEX data_conversations_by_start ON data_conversations (started_at);
        CREATE TABLE data_turns (
            conversation_id TEXT NOT NULL REFERENCES data_conversations (id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            item_id TEXT NOT NULL,
            user_text TEXT NOT NULL,
            corrected_text TEXT NOT NULL,
            answer_generated TEXT NOT NULL,
            answer_heard TEXT NOT NULL,
            language TEXT NOT NULL,
            started_at DOUBLE PRECISION NOT NULL,
            interrupted BOOLEAN NOT NULL,
            failure TEXT NOT NULL,
            tool_calls TEXT NOT NULL,
            latency_ms TEXT NOT NULL,
            user_audio TEXT NOT NULL,
            assistant_audio TEXT NOT NULL,
            PRIMARY KEY (conversation_id, idx)
        );
        CREATE INDEX data_turns_by_item ON data_turns (item_id);
        CREATE TABLE data_audio (
            path TEXT PRIMARY KEY,
            conversation_id TEXT NOT NULL REFERENCES data_conversations (id) ON DELETE CASCADE,
            rate INTEGER NOT NULL,
            wav BYTEA NOT NULL
        );
        CREATE INDEX data_audio_by_conversation ON data_audio (conversation_id);
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
