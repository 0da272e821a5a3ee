"""The training-round data pack: every training face and its identity embeddings in one small upload.

A lent GPU receives the tracked tree, the committed weights and carried folders in at most 64 MiB per command, so the
pack is sized to what is left: the faces as WebP at the highest quality that fits (``quality="auto"``), the dlib
embeddings as int8 with one float16 scale per row (max abs error 0.4 % of the row's largest component), plus a fixed
set of validation pairs (the same pairs as ``frgd eval faces``) for the round's quick check.

``PACK/faces.npz`` (``allow_pickle=False``):

================  ==========================================================================================
``blob``          uint8: concatenated WebP files, 128x128 RGB; ``offsets`` int64 ``(N + 1,)``
``split``         uint8 ``(N,)``: 0 train, 1 validation target
``ident``         int32 ``(N,)``: identity index (train identities; -1 for validation targets)
``emb_q``         int8 ``(N, D)`` and ``emb_scale`` float16 ``(N,)``: ``emb = emb_q * emb_scale`` (train faces: the
                  face's own embedding; validation targets: the embedding of their *reference* photo)
``aug_row``       int32 ``(N,)``: row of ``aug_q``/``aug_scale`` (``(M, K, D)``/``(M, K)``) holding the K fixed
                  reference augmentations of a face whose identity has no other photo, else -1
``val_files``     str ``(P,)``: the validation target files (for the record)
================  ==========================================================================================

``PACK/pack.json``: counts, the WebP quality, sizes and where the data came from. Research data: a pack is derived
from ``../shared`` and must never be committed (it lives under the ignored ``.carry/``).
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ...errors import InputError
from ...faces.align import FACE_SIZE as FACE

logger = logging.getLogger(__name__)

PACK_FILE = "faces.npz"
INFO_FILE = "pack.json"
QUALITIES = (90, 85, 80, 75, 70, 65, 60, 55, 50, 45)
"""WebP qualities tried by ``quality="auto"``, best first. The floor, 45, keeps 33.1 dB against the source JPEGs and
95.5 % of their fine detail (``detail``; 60: 34.2 dB, 97.4 %; ``scripts/measure_pack_codecs.py``,
docs/training_rounds.md); the three lowest make room for a carried compile cache."""
LOSSLESS = 101
"""OpenCV's WebP quality above 100 means lossless: validation targets are stored so, so that every round's
validation (and its bicubic baseline) sees the same ground truth whatever quality the training faces got."""


def quantise_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 rows and float16 scales with ``q * scale ~= x`` (per row of the last axis)."""
    x = np.asarray(x, np.float32)
    scale = np.abs(x).max(axis=-1) / 127.0
    scale = np.where(scale > 0, scale, 1.0).astype(np.float16)
    q = np.clip(np.round(x / scale.astype(np.float32)[..., None]), -127, 127).astype(np.int8)
    return q, scale


def dequantise_rows(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return q.astype(np.float32) * scale.astype(np.float32)[..., None]


def encode_webp(img_rgb: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".webp", np.ascontiguousarray(img_rgb[:, :, ::-1]), [cv2.IMWRITE_WEBP_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 RGB
        raise RuntimeError("WebP encoding failed")
    return buf.tobytes()


@dataclass
class PackSource:
    """Faces to pack: ``images`` ``(N, 128, 128, 3)`` uint8 RGB (train first), ``split`` ``(N,)`` 0/1, ``ident``
    ``(N,)``, ``emb`` ``(N, D)``, ``aug_emb`` ``(N, K, D)`` (zeros where unused), ``val_files``; ``origin`` text."""

    images: np.ndarray
    split: np.ndarray
    ident: np.ndarray
    emb: np.ndarray
    aug_emb: np.ndarray
    val_files: list[str]
    origin: str


def faces128_source(root: str | Path, embeddings: str | Path, val_pairs: int = 64) -> PackSource:
    """The faces128 train split plus ``val_pairs`` validation pairs (targets with their reference's embedding)."""
    from ...eval.faces import select_pairs
    from .data import Embeddings, read_image, read_labels

    root = Path(root)
    emb = Embeddings.load(embeddings)
    recs = [r for r in read_labels(root) if r.split == "train"]
    missing = [r.file for r in recs if r.file not in emb.index]
    if missing:
        raise InputError(f"{embeddings} lacks {len(missing)} train faces, e.g. {missing[0]}")
    names = sorted({r.identity for r in recs})
    id_of = {n: i for i, n in enumerate(names)}
    pairs = select_pairs(root, val_pairs) if val_pairs else []
    files = [r.file for r in recs] + [t for t, _, _ in pairs]
    t0 = time.perf_counter()
    with ThreadPoolExecutor() as ex:
        images = list(ex.map(lambda f: read_image(root / f), files))
    logger.info("read %d faces in %.1f s", len(files), time.perf_counter() - t0)
    rows = [emb.index[r.file] for r in recs]
    ref_rows = [emb.index[ref] for _, ref, _ in pairs]
    n_train = len(recs)
    return PackSource(
        images=np.stack(images),
        split=np.array([0] * n_train + [1] * len(pairs), np.uint8),
        ident=np.array([id_of[r.identity] for r in recs] + [-1] * len(pairs), np.int32),
        emb=np.concatenate([emb.emb[rows], emb.emb[ref_rows].reshape(len(pairs), -1)]),
        aug_emb=np.concatenate([emb.aug_emb[rows], np.zeros((len(pairs), *emb.aug_emb.shape[1:]), np.float32)]),
        val_files=[t for t, _, _ in pairs],
        origin=f"faces128 {root} + {embeddings}",
    )


def synthetic_source(n_train: int = 96, n_identities: int = 24, n_val: int = 8, seed: int = 0) -> PackSource:
    """Procedural faces (:class:`frgd.diffusion.training.data.SyntheticFaces`) for CPU rehearsals and CI: identity
    embeddings are the synthetic identities' fixed vectors; validation targets use identities of their own."""
    from .data import FacesDataConfig, SyntheticFaces

    ds = SyntheticFaces(n_train + n_val, n_identities + n_val, FacesDataConfig(size=FACE, seed=seed))
    images, ident, emb = [], [], []
    for i in range(n_train):
        k = i % n_identities
        images.append(ds.render(k, np.random.default_rng([seed, i])))
        ident.append(k)
        emb.append(ds.identity_vectors[k])
    for j in range(n_val):
        k = n_identities + j
        images.append(ds.render(k, np.random.default_rng([seed, 10_000 + j])))
        ident.append(-1)
        emb.append(ds.identity_vectors[k])
    e = np.stack(emb).astype(np.float32)
    return PackSource(
        images=np.stack(images),
        split=np.array([0] * n_train + [1] * n_val, np.uint8),
        ident=np.array(ident, np.int32),
        emb=e,
        aug_emb=np.repeat(e[:, None], 2, axis=1),
        val_files=[f"synthetic/{j}" for j in range(n_val)],
        origin=f"synthetic seed {seed}",
    )


def write_pack(src: PackSource, out: str | Path, quality: int | str = "auto", budget_bytes: int | None = None) -> dict:
    """Write ``out/faces.npz`` + ``out/pack.json``; returns the info dict.

    ``quality="auto"`` picks the best of :data:`QUALITIES` whose pack fits ``budget_bytes`` (estimated on a 1/16
    sample, then checked on the real file); an integer forces it.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n = len(src.images)
    if src.images.shape[1:] != (FACE, FACE, 3) or src.images.dtype != np.uint8:
        raise InputError(f"pack images must be (N, {FACE}, {FACE}, 3) uint8, got {src.images.shape} {src.images.dtype}")
    _, inverse, counts = np.unique(src.ident, return_inverse=True, return_counts=True)
    lonely = (src.split == 0) & (counts[inverse] == 1)
    aug_row = np.full(n, -1, np.int32)
    aug_row[lonely] = np.arange(int(lonely.sum()))
    emb_q, emb_scale = quantise_rows(src.emb)
    aug_q, aug_scale = quantise_rows(src.aug_emb[lonely]) if lonely.any() else (
        np.zeros((0, *src.aug_emb.shape[1:]), np.int8), np.zeros((0, src.aug_emb.shape[1]), np.float16)
    )  # fmt: skip
    fixed = emb_q.nbytes + emb_scale.nbytes + aug_q.nbytes + aug_scale.nbytes + n * 17 + 4096  # + npz headers

    def encode_all(q: int, step: int = 1) -> list[bytes]:
        """Every ``step``-th face: training faces at quality ``q``, validation targets lossless."""
        with ThreadPoolExecutor() as ex:
            return list(ex.map(lambda i: encode_webp(src.images[i], q if src.split[i] == 0 else LOSSLESS),
                               range(0, n, step)))  # fmt: skip

    if quality == "auto":
        if budget_bytes is None:
            raise InputError("quality='auto' needs a byte budget")
        candidates = list(QUALITIES)
        for q in QUALITIES:  # estimate from a sample, keep the qualities that might fit
            est = sum(len(b) for b in encode_all(q, 16)) * n / len(range(0, n, 16)) + fixed
            if est <= budget_bytes * 0.99:
                candidates = [c for c in QUALITIES if c <= q]
                break
        else:
            raise InputError(
                f"the faces do not fit {budget_bytes / 2**20:.1f} MiB even at WebP quality {QUALITIES[-1]}"
            )
    else:
        candidates = [int(quality)]
    path = out / PACK_FILE
    for q in candidates:
        t0 = time.perf_counter()
        blobs = encode_all(q)
        offsets = np.zeros(n + 1, np.int64)
        offsets[1:] = np.cumsum([len(b) for b in blobs])
        np.savez(
            path,
            blob=np.frombuffer(b"".join(blobs), np.uint8),
            offsets=offsets,
            split=src.split.astype(np.uint8),
            ident=src.ident.astype(np.int32),
            emb_q=emb_q,
            emb_scale=emb_scale,
            aug_row=aug_row,
            aug_q=aug_q,
            aug_scale=aug_scale,
            val_files=np.array(src.val_files, dtype=str),
        )
        size = path.stat().st_size
        logger.info("pack at WebP q%d: %.2f MiB (%.1f s)", q, size / 2**20, time.perf_counter() - t0)
        if budget_bytes is None or size <= budget_bytes:
            break
    else:
        path.unlink(missing_ok=True)
        raise InputError(f"the pack does not fit {budget_bytes / 2**20:.1f} MiB at WebP quality {candidates[-1]}")
    info = {
        "faces_train": int((src.split == 0).sum()),
        "identities_train": int(len(set(src.ident[src.split == 0].tolist()))),
        "single_photo_faces": int(lonely.sum()),
        "val_targets": int((src.split == 1).sum()),
        "webp_quality": int(q),
        "val_lossless": True,
        "bytes": int(size),
        "embedding_dim": int(src.emb.shape[1]),
        "origin": src.origin,
    }
    (out / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return info


@dataclass
class Pack:
    """A decoded pack: ``train_images`` ``(N, 128, 128, 3)`` uint8 with ``train_ident``, ``train_emb`` ``(N, D)``,
    ``train_aug_emb`` ``(N, K, D)`` (zeros where unused); ``val_images`` ``(P, 128, 128, 3)`` and ``val_ref_emb``
    ``(P, D)``; ``info``."""

    train_images: np.ndarray
    train_ident: np.ndarray
    train_emb: np.ndarray
    train_aug_emb: np.ndarray
    val_images: np.ndarray
    val_ref_emb: np.ndarray
    val_files: list[str]
    info: dict[str, Any]


def _decode(buf: np.ndarray) -> np.ndarray:
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None or img.shape != (FACE, FACE, 3):
        raise InputError("corrupt face in the pack")
    return np.ascontiguousarray(img[:, :, ::-1])


def load_pack(path: str | Path, workers: int | None = None) -> Pack:
    """Read and decode a pack folder (WebP decoding in a thread pool)."""
    path = Path(path)
    f = path / PACK_FILE
    if not f.is_file():
        raise InputError(f"no training pack at {path} (make one with `frgd round pack`)")
    info = json.loads((path / INFO_FILE).read_text()) if (path / INFO_FILE).is_file() else {}
    with np.load(f, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    off, blob = d["offsets"], d["blob"]
    with ThreadPoolExecutor(max_workers=workers) as ex:
        images = np.stack(list(ex.map(lambda i: _decode(blob[off[i] : off[i + 1]]), range(len(off) - 1))))
    emb = dequantise_rows(d["emb_q"], d["emb_scale"])
    emb /= np.linalg.norm(emb, axis=-1, keepdims=True).clip(1e-8)
    aug_all = dequantise_rows(d["aug_q"], d["aug_scale"]) if len(d["aug_q"]) else None
    tr = d["split"] == 0
    k = d["aug_q"].shape[1] if d["aug_q"].ndim == 3 else 1
    aug = np.zeros((len(emb), k, emb.shape[1]), np.float32)
    rows = d["aug_row"]
    if aug_all is not None:
        aug[rows >= 0] = aug_all[rows[rows >= 0]]
    return Pack(
        train_images=images[tr],
        train_ident=d["ident"][tr],
        train_emb=emb[tr],
        train_aug_emb=aug[tr],
        val_images=images[~tr],
        val_ref_emb=emb[~tr],
        val_files=[str(s) for s in d["val_files"]],
        info=info,
    )


__all__ = [
    "INFO_FILE",
    "PACK_FILE",
    "Pack",
    "PackSource",
    "dequantise_rows",
    "faces128_source",
    "load_pack",
    "quantise_rows",
    "synthetic_source",
    "write_pack",
]
