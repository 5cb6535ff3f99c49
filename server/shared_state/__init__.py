"""State that every worker behind the front door must see alike (README "Scaling out").

Each kind of state has a small interface and two back ends: the local one (in this process, or
SQLite), the default for one machine, and a real service for a fleet: client secrets, per-client
session counts and the session registry in Redis; user memory in PostgreSQL.
"""
