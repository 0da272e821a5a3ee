"""Reference-embedding cache: embeddings of reference photos keyed by the file's sha256 and the backend.

In memory (per process) and on disk under ``frgd.weights.cache_dir() / "identity_refs" / <backend>/<sha256>.npy``
(``$FRGD_CACHE_DIR/weights/identity_refs`` when that is set), so re-using a reference photo in the editor or the CLI
does not re-run detection and the encoder. The key covers the file's bytes, so editing the photo invalidates the entry.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError

logger = logging.getLogger(__name__)

ComputeFn = Callable[[Path], torch.Tensor]
"""``compute(path) -> (D,)`` embedding of the reference photo at ``path``."""


def _default_root() -> Path:
    from ..weights import cache_dir

    return cache_dir() / "identity_refs"


class ReferenceEmbeddingCache:
    """``get(path, compute)`` returns the ``(D,)`` float32 embedding of ``path`` for ``backend``, computing it once.

    Args:
        backend: encoder backend name (part of the key, e.g. ``"dlib"``); use a distinct name for a different
            alignment or model version.
        root: on-disk folder (default: ``frgd.weights.cache_dir() / "identity_refs"``); ``disk=False`` keeps it in
            memory only.
    """

    def __init__(self, backend: str, root: str | Path | None = None, disk: bool = True) -> None:
        if not backend or any(c in backend for c in "/\\:"):
            raise InputError(f"invalid backend name {backend!r}")
        self.backend = backend
        self._root = Path(root) if root is not None else None
        self.disk = disk
        self._mem: dict[str, torch.Tensor] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def root(self) -> Path:
        return (self._root or _default_root()) / self.backend

    def key(self, path: str | Path) -> str:
        """The cache key of ``path``: ``"<sha256 of the file>"`` (the backend is the folder)."""
        from ..io import file_sha256

        p = Path(path)
        if not p.is_file():
            raise InputError(f"reference photo not found: {p}")
        return file_sha256(p)

    def get(self, path: str | Path, compute: ComputeFn | None = None, encoder=None) -> torch.Tensor:
        """Cached embedding ``(D,)`` float32 (CPU) of the reference photo ``path``.

        ``compute(path) -> (D,)`` makes a missing entry; by default :func:`reference_embedding` with ``encoder``
        (default: ``get_identity_encoder(backend)``).
        """
        if compute is None:

            def compute(p: Path) -> torch.Tensor:
                from .encoder import get_identity_encoder

                return reference_embedding(p, encoder or get_identity_encoder(self.backend))

        k = self.key(path)
        with self._lock:
            if k in self._mem:
                self.hits += 1
                return self._mem[k].clone()
        f = self.root / f"{k}.npy"
        if self.disk and f.is_file():
            try:
                emb = torch.from_numpy(np.load(f, allow_pickle=False).astype(np.float32))
                with self._lock:
                    self._mem[k] = emb
                    self.hits += 1
                return emb.clone()
            except (OSError, ValueError) as err:
                logger.warning("ignoring unreadable cached embedding %s: %s", f, err)
        emb = compute(Path(path))
        emb = torch.as_tensor(emb).detach().float().cpu().reshape(-1)
        with self._lock:
            self._mem[k] = emb
            self.misses += 1
        if self.disk:
            try:
                f.parent.mkdir(parents=True, exist_ok=True)
                tmp = f.with_suffix(f".{os.getpid()}.tmp.npy")
                np.save(tmp, emb.numpy(), allow_pickle=False)
                os.replace(tmp, f)
            except OSError as err:
                logger.warning("could not write the embedding cache %s: %s", f, err)
        return emb.clone()

    def clear(self, disk: bool = False) -> None:
        """Forget the in-memory entries (and the on-disk ones for this backend with ``disk=True``)."""
        with self._lock:
            self._mem.clear()
        if disk and self.root.is_dir():
            for f in self.root.glob("*.npy"):
                f.unlink(missing_ok=True)


def reference_embedding(path: str | Path, encoder) -> torch.Tensor:
    """Unit embedding ``(D,)`` of the largest face in the photo at ``path`` (MTCNN landmarks -> ``embed_image``).

    An image that is already an aligned crop on our template (square, no face found by MTCNN) is embedded as is.
    """
    from ..faces.detect import detect_faces
    from ..io import load_rgb
    from ..tensor import image_to_tensor

    img = load_rgb(path)
    faces = detect_faces(img)
    x = image_to_tensor(img).to(encoder.device)
    with torch.no_grad():
        if faces:
            return encoder.embed_image(x, faces[0].landmarks)[0].float().cpu()
        if img.shape[0] == img.shape[1]:
            logger.info("no face detected in %s; treating it as an aligned crop", path)
            return encoder.embed(x)[0].float().cpu()
    raise InputError(f"no face found in the reference photo {Path(path).name}")
