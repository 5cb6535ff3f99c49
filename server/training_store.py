"""The data stage's store that ``state.backend`` names, for the server's recorder and ``tingshuo data``.

``local``: the SQLite file and WAV files under ``data.dir`` (:class:`TrainingDataStore`, created
on its first write). ``redis+postgres``: PostgreSQL, shared by every worker
(:class:`PostgresTrainingDataStore`), connected and migrated here, so it blocks (seconds at most)
and raises ``DataStoreError`` naming the server when it cannot be reached; ``data.dir`` is then
only where exports put the audio they read.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from server.config import Config
from thinking.training_data.data_store import TrainingDataStore

if TYPE_CHECKING:
    from server.shared_state.postgres_training_data import PostgresTrainingDataStore

log = logging.getLogger(__name__)

MIN_CALL_TIMEOUT_S = 5.0
"""A turn's audio is megabytes and nobody waits for the recorder: it gets longer than a session's calls."""


def open_training_store(config: Config) -> TrainingDataStore | PostgresTrainingDataStore:
    """Blocking for ``redis+postgres`` (it connects); call it off the event loop."""
    if config.state.backend == "redis+postgres":
        from server.shared_state.postgres_training_data import PostgresTrainingDataStore

        store = PostgresTrainingDataStore(url=config.state.postgres_url, root=config.data.dir,
                                          call_timeout_s=max(config.state.call_timeout_s, MIN_CALL_TIMEOUT_S))
        try:
            applied = store.open()
        except BaseException:
            store.close()
            raise
        log.info("training data in %s%s", store.where, f" (applied migrations {applied})" if applied else "")
        return store
    return TrainingDataStore(config.data.dir)
