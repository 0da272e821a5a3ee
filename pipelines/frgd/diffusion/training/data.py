"""Training data for FRGD: aligned faces, on-the-fly degradation, fusion masks and a reference identity.

Sources (all give the same items):

* the faces128 folder (``labels.csv`` + ``train/`` + ``val/``, see ``../shared/data/faces128/README.md``);
* shards written by ``scripts/make_shards.py`` (``index.json`` + ``shard_XXXX.npz``: the JPEG bytes, file names,
  identities and landmarks, at most 40 MiB each) for machines without the folder;
* :class:`SyntheticFaces` (procedural face-like images with synthetic identities) for CI without shared data.

An item (``dict``) of :class:`FacesDataset`:

=================  ====================================================================================
``target``         ``(3, S, S)`` float32 ``[0, 1]``: the face (random horizontal flip), ``S = size``
``degraded``       ``(3, S, S)`` float32 ``[0, 1]``: ``frgd.degrade.degrade_image`` of the target (x2-x16 down,
                   15 % extreme at x24-x64, blur, noise in random order, then JPEG; :data:`TRAIN_DEGRADATION`),
                   resized back to ``S`` (bicubic)
``mask``           ``(1, S, S)`` float32: fusion mask, 1 = generate (all ones = plain restoration)
``fusion_noisy``   bool, ``fusion_checker`` bool: see :mod:`frgd.diffusion.training.fusion`
``reference``      ``(3, 128, 128)`` float32 ``[0, 1]``: a different photo of the same identity when there is one,
                   else an augmented copy of the target (flip, colour jitter, small warp) -- only without embeddings
``identity``       ``(D,)`` float32 unit embedding of that reference -- only with an embeddings file
``ref_is_other``   bool: the reference is a different photo
``index``          int
=================  ====================================================================================

Determinism: every random choice of an item comes from ``np.random.default_rng([seed, epoch, index])``; the
:class:`EpochSampler` gives a seeded permutation per epoch and can start in the middle of an epoch, so an
interrupted run resumes with exactly the same data (any number of loader workers).
"""

from __future__ import annotations

import csv
import json
import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ...degrade import DegradationConfig, degrade_image
from ...errors import InputError
from ...faces.align import FACE_SIZE, template
from ...tensor import image_to_tensor
from .fusion import FusionConfig, sample_fusion_mask

logger = logging.getLogger(__name__)

EMB_FILE_KEYS = ("files", "emb", "aug_emb")
TRAIN_DEGRADATION: dict[str, Any] = {"shuffle_order": True}
"""Training defaults under ``FacesDataConfig.degradation``: blur, downscale and noise in random order (JPEG last)."""


# ----------------------------------------------------------------------------------------------- records / sources


@dataclass
class FaceRecord:
    """One face: ``file`` relative to the faces128 root, its split, identity and 5 landmarks ``(5, 2)`` at 128 px."""

    file: str
    split: str
    identity: str
    landmarks: np.ndarray


def read_labels(root: str | Path) -> list[FaceRecord]:
    """All rows of ``root/labels.csv``."""
    path = Path(root) / "labels.csv"
    if not path.is_file():
        raise InputError(f"faces dataset labels not found: {path}")
    out = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            lm = np.array([float(v) for v in row["lm"].split()], np.float32).reshape(5, 2) if row.get("lm") else None
            out.append(
                FaceRecord(row["file"], row["split"], row["identity"], lm if lm is not None else template(FACE_SIZE))
            )
    return out


class ShardStore:
    """Reads the packed shard format of ``scripts/make_shards.py`` (``index.json`` + ``shard_XXXX.npz``)."""

    def __init__(self, shard_dir: str | Path) -> None:
        self.dir = Path(shard_dir)
        idx_path = self.dir / "index.json"
        if not idx_path.is_file():
            raise InputError(f"shard index not found: {idx_path} (write shards with scripts/make_shards.py)")
        self.index = json.loads(idx_path.read_text())
        self.records: list[FaceRecord] = []
        self._loc: dict[str, tuple[int, int]] = {}
        self._blobs: list[np.ndarray] = []
        self._offsets: list[np.ndarray] = []
        for si, name in enumerate(self.index["shards"]):
            with np.load(self.dir / name, allow_pickle=False) as z:
                self._blobs.append(z["blob"])
                self._offsets.append(z["offsets"])
                files, splits, ids, lms = z["files"], z["splits"], z["identities"], z["landmarks"]
            for j in range(len(files)):
                rec = FaceRecord(str(files[j]), str(splits[j]), str(ids[j]), lms[j].astype(np.float32))
                self.records.append(rec)
                self._loc[rec.file] = (si, j)

    def read(self, file: str) -> np.ndarray:
        """``(128, 128, 3)`` uint8 RGB of ``file``."""
        si, j = self._loc[file]
        off = self._offsets[si]
        buf = self._blobs[si][off[j] : off[j + 1]]
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if img is None:
            raise InputError(f"corrupt JPEG for {file} in shard {si}")
        return np.ascontiguousarray(img[:, :, ::-1])


def read_image(path: str | Path) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"cannot read image {path}")
    return np.ascontiguousarray(img[:, :, ::-1])


# --------------------------------------------------------------------------------------------------- augmentation


def augment_reference(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Augmented copy of an aligned face ``(H, W, 3)`` uint8 for the single-photo identity case: random flip, colour
    jitter (brightness/contrast/saturation +-15%, hue-free) and a small similarity warp (+-4 deg, +-4% scale,
    +-3% shift, reflected border). Returns uint8 ``(H, W, 3)``."""
    h, w = img.shape[:2]
    x = img.astype(np.float32) / 255.0
    if rng.random() < 0.5:
        x = x[:, ::-1]
    angle = rng.uniform(-4, 4)
    scale = rng.uniform(0.96, 1.04)
    tx, ty = rng.uniform(-0.03, 0.03) * w, rng.uniform(-0.03, 0.03) * h
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    m[:, 2] += (tx, ty)
    x = cv2.warpAffine(np.ascontiguousarray(x), m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    b, c, s = rng.uniform(0.85, 1.15), rng.uniform(0.85, 1.15), rng.uniform(0.85, 1.15)
    gray = x @ np.array([0.299, 0.587, 0.114], np.float32)
    x = gray[..., None] + (x - gray[..., None]) * s
    mean = float(gray.mean())
    x = (x - mean) * c + mean
    x = x * b
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def fixed_aug_seed(file: str, k: int) -> list[int]:
    """Seed of the ``k``-th precomputed reference augmentation of ``file`` (shared by make_shards and the dataset)."""
    h = 0
    for ch in file.encode():
        h = (h * 131 + ch) % (2**61 - 1)
    return [h, 7919, k]


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    if img.shape[0] == size and img.shape[1] == size:
        return img
    interp = cv2.INTER_AREA if size < img.shape[0] else cv2.INTER_CUBIC
    return cv2.resize(img, (size, size), interpolation=interp)


def _chw(img: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8/float -> ``(3, H, W)`` float32 ``[0, 1]``."""
    return image_to_tensor(img)[0]


# -------------------------------------------------------------------------------------------------------- dataset


@dataclass
class Embeddings:
    """Precomputed identity embeddings: ``emb`` ``(N, D)`` per file, ``aug_emb`` ``(N, K, D)`` of the K fixed
    reference augmentations (rows of files whose identity has other photos may be zeros)."""

    index: dict[str, int]
    emb: np.ndarray
    aug_emb: np.ndarray
    backend: str = "dlib"

    @classmethod
    def load(cls, path: str | Path) -> Embeddings:
        if not Path(path).is_file():
            raise InputError(f"embeddings file not found: {path} (write it with scripts/make_shards.py --embeddings)")
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in EMB_FILE_KEYS if k not in z]
            if missing:
                raise InputError(f"{path}: not an embeddings file (missing {missing})")
            files = [str(f) for f in z["files"]]
            backend = str(z["backend"]) if "backend" in z else "dlib"
            return cls(
                {f: i for i, f in enumerate(files)},
                z["emb"].astype(np.float32),
                z["aug_emb"].astype(np.float32),
                backend,
            )


@dataclass
class FacesDataConfig:
    """Options of :class:`FacesDataset` (the ``data`` section of a training config)."""

    size: int = FACE_SIZE
    flip: bool = True
    max_items: int | None = None
    max_identities: int | None = None
    degradation: dict[str, Any] = field(default_factory=dict)
    fusion: dict[str, Any] = field(default_factory=dict)
    seed: int = 0


class FacesDataset(Dataset):
    """faces128 (folder or shards) -> training items (see the module docstring).

    ``root``: the faces128 folder (``labels.csv``) or a shard folder (``index.json``). ``split``: ``train`` or
    ``val``. ``embeddings``: optional ``.npz`` from ``scripts/make_shards.py``; then items carry ``identity`` instead
    of ``reference``. Val identities never appear in train (asserted).
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        cfg: FacesDataConfig | None = None,
        embeddings: str | Path | Embeddings | None = None,
        epoch: int = 0,
    ) -> None:
        if split not in ("train", "val"):
            raise InputError(f"split must be 'train' or 'val', got {split!r}")
        self.root = Path(root)
        self.split = split
        self.cfg = cfg or FacesDataConfig()
        self.epoch = epoch
        self.deg_cfg = degradation_config(self.cfg.degradation)
        self.fusion_cfg = FusionConfig.from_dict(self.cfg.fusion)
        if (self.root / "index.json").is_file():
            self.store: ShardStore | None = ShardStore(self.root)
            all_records = self.store.records
        else:
            self.store = None
            all_records = read_labels(self.root)
        train_ids = {r.identity for r in all_records if r.split == "train"}
        val_ids = {r.identity for r in all_records if r.split == "val"}
        overlap = train_ids & val_ids
        if overlap:  # an explicit raise, not an ``assert`` that ``python -O`` would strip
            raise AssertionError(f"val identities appear in train: {sorted(overlap)[:5]}")
        records = [r for r in all_records if r.split == split]
        if self.cfg.max_identities:
            keep = sorted({r.identity for r in records})
            keep = set(keep[: self.cfg.max_identities])
            records = [r for r in records if r.identity in keep]
        if self.cfg.max_items:
            records = _subset_keeping_pairs(records, self.cfg.max_items)
        if not records:
            raise InputError(f"no {split} faces under {self.root}")
        self.records = records
        self.by_identity: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(records):
            self.by_identity[r.identity].append(i)
        if isinstance(embeddings, (str, Path)):
            embeddings = Embeddings.load(embeddings)
        self.embeddings = embeddings
        if embeddings is not None:
            missing = [r.file for r in records if r.file not in embeddings.index]
            if missing:
                raise InputError(f"embeddings file lacks {len(missing)} faces, e.g. {missing[0]}")
        logger.info(
            "FacesDataset %s: %d faces, %d identities (%d with >= 2 photos), source=%s",
            split,
            len(records),
            len(self.by_identity),
            sum(len(v) >= 2 for v in self.by_identity.values()),
            "shards" if self.store else "folder",
        )

    @property
    def identity_names(self) -> set[str]:
        return set(self.by_identity)

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _read(self, rec: FaceRecord) -> np.ndarray:
        img = self.store.read(rec.file) if self.store is not None else read_image(self.root / rec.file)
        if img.shape[:2] != (FACE_SIZE, FACE_SIZE):
            img = _resize(img, FACE_SIZE)
        return img

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, epoch = (int(key[0]), int(key[1])) if isinstance(key, (tuple, list)) else (int(key), self.epoch)
        rng = np.random.default_rng([self.cfg.seed, epoch, index])
        rec = self.records[index]
        face = self._read(rec)
        lm = rec.landmarks.copy()
        flip = self.cfg.flip and rng.random() < 0.5
        if flip:
            face = np.ascontiguousarray(face[:, ::-1])
            lm[:, 0] = FACE_SIZE - 1 - lm[:, 0]
            lm = lm[[1, 0, 2, 4, 3]]
        s = self.cfg.size
        target = _resize(face, s)
        deg = degrade_image(target.astype(np.float32) / 255.0, rng, self.deg_cfg).lq
        if deg.shape[:2] != (s, s):
            deg = cv2.resize(deg, (s, s), interpolation=cv2.INTER_CUBIC).clip(0, 1)
        fus = sample_fusion_mask(rng, (s, s), self.fusion_cfg, lm * (s / FACE_SIZE))
        item: dict[str, Any] = {
            "target": _chw(target),
            "degraded": _chw(deg),
            "mask": torch.from_numpy(fus.mask)[None],
            "fusion_noisy": fus.noisy,
            "fusion_checker": fus.kind == "checker",
            "index": index,
        }
        others = [j for j in self.by_identity[rec.identity] if j != index]
        u_ref = rng.random()
        if others:
            j = others[int(u_ref * len(others)) % len(others)]
            item["ref_is_other"] = True
            if self.embeddings is not None:
                item["identity"] = torch.from_numpy(self.embeddings.emb[self.embeddings.index[self.records[j].file]])
            else:
                item["reference"] = _chw(self._read(self.records[j]))
        else:
            item["ref_is_other"] = False
            if self.embeddings is not None:
                row = self.embeddings.aug_emb[self.embeddings.index[rec.file]]
                k = int(u_ref * row.shape[0]) % row.shape[0]
                if not np.any(row[k]):
                    raise InputError(f"embeddings file has no augmented-reference embedding for {rec.file}")
                item["identity"] = torch.from_numpy(row[k])
            else:
                item["reference"] = _chw(augment_reference(self._read(rec), rng))
        return item


def _subset_keeping_pairs(records: list[FaceRecord], n: int) -> list[FaceRecord]:
    """At most ``n`` faces made of whole identities in sorted order (so an identity's photo count in the subset is the
    same as in the split, which precomputed augmentation embeddings rely on)."""
    groups: dict[str, list[FaceRecord]] = defaultdict(list)
    for r in records:
        groups[r.identity].append(r)
    out: list[FaceRecord] = []
    for ident in sorted(groups):
        if len(out) + len(groups[ident]) <= n:
            out.extend(groups[ident])
        if len(out) >= n:
            break
    return out


def degradation_config(d: dict[str, Any] | None) -> DegradationConfig:
    """The :class:`DegradationConfig` of a ``degradation`` section: :data:`TRAIN_DEGRADATION` overridden by ``d``."""
    merged = {**TRAIN_DEGRADATION, **(d or {})}
    unknown = set(merged) - set(DegradationConfig.__dataclass_fields__)
    if unknown:
        raise InputError(f"unknown degradation config keys: {sorted(unknown)}")
    return DegradationConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in merged.items()})


# ------------------------------------------------------------------------------------------------------ synthetic


class SyntheticFaces(Dataset):
    """Procedural face-like images (skin-toned ellipse, eyes, mouth; per-identity geometry and colours) for CI
    without shared data. Items match :class:`FacesDataset` with an ``identity`` embedding (a fixed random unit
    vector per synthetic identity). Deterministic in ``(seed, epoch, index)``."""

    def __init__(
        self,
        n_items: int = 256,
        n_identities: int = 32,
        cfg: FacesDataConfig | None = None,
        identity_dim: int = 128,
        epoch: int = 0,
    ) -> None:
        self.cfg = cfg or FacesDataConfig(size=32)
        self.n_items = n_items
        self.n_identities = n_identities
        self.epoch = epoch
        self.deg_cfg = degradation_config(self.cfg.degradation)
        self.fusion_cfg = FusionConfig.from_dict(self.cfg.fusion)
        g = np.random.default_rng([self.cfg.seed, 12345])
        e = g.standard_normal((n_identities, identity_dim)).astype(np.float32)
        self.identity_vectors = e / np.linalg.norm(e, axis=1, keepdims=True)
        self.params = g.uniform(0, 1, (n_identities, 8)).astype(np.float32)

    def __len__(self) -> int:
        return self.n_items

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def render(self, ident: int, rng: np.random.Generator) -> np.ndarray:
        """``(S, S, 3)`` uint8 face of identity ``ident`` with small random pose/lighting."""
        s = self.cfg.size
        p = self.params[ident]
        img = np.zeros((s, s, 3), np.float32)
        img[:] = np.array([0.2 + 0.5 * p[0], 0.3 + 0.4 * p[1], 0.3 + 0.5 * p[2]])[None, None] * rng.uniform(0.9, 1.1)
        cx, cy = s / 2 + rng.uniform(-1, 1) * s / 32, s / 2 + rng.uniform(-1, 1) * s / 32
        skin = tuple(float(v) for v in (0.55 + 0.4 * p[3], 0.45 + 0.3 * p[3], 0.35 + 0.25 * p[4]))
        cv2.ellipse(img, (int(cx), int(cy)), (int(s * (0.28 + 0.06 * p[5])), int(s * 0.38)), 0, 0, 360, skin, -1)
        eye_dx, eye_y = s * (0.11 + 0.05 * p[6]), cy - s * 0.06
        eye_col = tuple(float(v) for v in (0.1 + 0.4 * p[7], 0.1 + 0.3 * p[1], 0.1 + 0.3 * p[2]))
        r = max(1, int(s * 0.05))
        for sx in (-1, 1):
            cv2.circle(img, (int(cx + sx * eye_dx), int(eye_y)), r, eye_col, -1)
        cv2.ellipse(
            img, (int(cx), int(cy + s * 0.18)), (int(s * (0.08 + 0.06 * p[5])), max(1, int(s * 0.03))), 0, 0, 360,
            (0.6, 0.2, 0.25), -1,
        )  # fmt: skip
        img = img * rng.uniform(0.9, 1.1)
        return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, epoch = (int(key[0]), int(key[1])) if isinstance(key, (tuple, list)) else (int(key), self.epoch)
        rng = np.random.default_rng([self.cfg.seed, epoch, index])
        ident = index % self.n_identities
        target = self.render(ident, rng)
        s = self.cfg.size
        deg = degrade_image(target.astype(np.float32) / 255.0, rng, self.deg_cfg).lq
        if deg.shape[:2] != (s, s):
            deg = cv2.resize(deg, (s, s), interpolation=cv2.INTER_CUBIC).clip(0, 1)
        fus = sample_fusion_mask(rng, (s, s), self.fusion_cfg)
        return {
            "target": _chw(target),
            "degraded": _chw(deg),
            "mask": torch.from_numpy(fus.mask)[None],
            "fusion_noisy": fus.noisy,
            "fusion_checker": fus.kind == "checker",
            "identity": torch.from_numpy(self.identity_vectors[ident]),
            "ref_is_other": True,
            "index": index,
        }


# -------------------------------------------------------------------------------------------------------- sampler


class EpochSampler(Sampler):
    """Seeded per-epoch permutation yielding ``(index, epoch)`` keys; resumable mid-epoch; shards across processes.

    ``position`` = number of batches already consumed in total (the training step); iteration starts at the epoch
    and batch it implies and runs forever (the training loop stops it). Each process takes every
    ``num_processes``-th batch-sized slice of the global order, so the global data order does not depend on the
    number of processes.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int = 0,
        position: int = 0,
        process_index: int = 0,
        num_processes: int = 1,
    ) -> None:
        if n < batch_size * num_processes:
            raise InputError(f"dataset of {n} items is smaller than one global batch ({batch_size * num_processes})")
        self.n = n
        self.batch_size = batch_size
        self.seed = seed
        self.position = position
        self.rank = process_index
        self.world = num_processes
        self.batches_per_epoch = n // (batch_size * num_processes)

    def epoch_of(self, step: int) -> int:
        return step // self.batches_per_epoch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        step = self.position
        while True:
            epoch, b = divmod(step, self.batches_per_epoch)
            perm = np.random.default_rng([self.seed, 99991, epoch]).permutation(self.n)
            gb = self.batch_size * self.world
            start = b * gb + self.rank * self.batch_size
            for i in perm[start : start + self.batch_size]:
                yield int(i), epoch
            step += 1

    def __len__(self) -> int:  # infinite stream; length of one epoch for tools that ask
        return self.batches_per_epoch * self.batch_size


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack items into a batch (tensors stacked, bools/ints to tensors)."""
    out: dict[str, Any] = {}
    for k in items[0]:
        vals = [it[k] for it in items]
        if torch.is_tensor(vals[0]):
            out[k] = torch.stack(vals)
        elif isinstance(vals[0], bool):
            out[k] = torch.tensor(vals, dtype=torch.bool)
        else:
            out[k] = torch.tensor(vals)
    return out
