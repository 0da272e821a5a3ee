"""Pack faces128 into <= 40 MiB shards (+ precomputed identity embeddings) for a training machine.

Usage::

    .venv/bin/python scripts/make_shards.py --root ../shared/data/faces128 --out out/faces128_shards \
        [--splits train val] [--max-mib 40] [--limit N per split] [--embeddings] [--aug 2] [--device cpu] [--batch 64]
    .venv/bin/python scripts/make_shards.py --out out/faces128_shards --embed-only --device cuda   # on the GPU box

Writes ``OUT/shard_XXXX.npz`` (``allow_pickle=False`` arrays: ``blob`` uint8 concatenated JPEG bytes as stored in
faces128, ``offsets`` int64 ``(N + 1,)``, ``files``, ``splits``, ``identities`` (unicode), ``landmarks`` float32
``(N, 5, 2)``), ``OUT/index.json`` and, with ``--embeddings``, ``OUT/embeddings.npz``: ``files``, ``emb`` ``(N, D)``
float32 (the identity encoder on each face), ``aug_emb`` ``(N, K, D)`` (the encoder on the K fixed reference
augmentations ``frgd.diffusion.training.data.augment_reference(img, default_rng(fixed_aug_seed(file, k)))``,
computed only for
faces whose identity has no other photo in its split; zeros elsewhere) and ``backend``.
``FacesDataset(OUT, ...)`` reads the shards; ``embeddings=OUT/embeddings.npz`` switches it to precomputed identities.

Research data: the shards are derived from ``../shared`` and must never be committed (write them under ``out/``,
which git ignores, or outside the repository).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

logger = logging.getLogger("make_shards")


def pack(root: Path, out: Path, splits: list[str], max_mib: float = 40.0, limit: int | None = None) -> dict:
    """Write the shards and ``index.json``; returns the index."""
    from frgd.diffusion.training.data import read_labels

    recs = [r for r in read_labels(root) if r.split in splits]
    if limit:
        recs = [r for split in splits for r in [q for q in recs if q.split == split][:limit]]
    out.mkdir(parents=True, exist_ok=True)
    cap = int(max_mib * 1024 * 1024)
    budget = cap - min(64 * 1024, cap // 20)  # headroom for the npz container
    shards: list[str] = []
    cur: list[tuple] = []
    cur_bytes = 0

    def flush() -> None:
        nonlocal cur, cur_bytes
        if not cur:
            return
        blobs = [c[0] for c in cur]
        offsets = np.zeros(len(blobs) + 1, np.int64)
        offsets[1:] = np.cumsum([len(b) for b in blobs])
        name = f"shard_{len(shards):04d}.npz"
        np.savez(
            out / name,
            blob=np.frombuffer(b"".join(blobs), np.uint8),
            offsets=offsets,
            files=np.array([c[1].file for c in cur]),
            splits=np.array([c[1].split for c in cur]),
            identities=np.array([c[1].identity for c in cur]),
            landmarks=np.stack([c[1].landmarks for c in cur]).astype(np.float32),
        )
        size = (out / name).stat().st_size
        if size > max_mib * 1024 * 1024:
            raise RuntimeError(f"{name} is {size} bytes, over {max_mib} MiB")
        shards.append(name)
        logger.info("%s: %d faces, %.1f MiB", name, len(cur), size / 2**20)
        cur, cur_bytes = [], 0

    def npz_size(jpeg_bytes: int, n: int, max_chars: int) -> int:
        # numpy unicode arrays take 4 bytes per character of the longest string; + offsets and landmarks
        return jpeg_bytes + n * (4 * max_chars + 8 + 40) + 4096  # + zip/npy headers

    maxlen = (0, 0, 0)  # longest file name, identity, split in the current shard
    for rec in recs:
        data = (root / rec.file).read_bytes()
        lens = (len(rec.file), len(rec.identity), len(rec.split))
        grown = tuple(max(a, b) for a, b in zip(maxlen, lens))
        if cur and npz_size(cur_bytes + len(data), len(cur) + 1, sum(grown)) > budget:
            flush()
            grown = lens
        cur.append((data, rec))
        cur_bytes += len(data)
        maxlen = grown
    flush()
    index = {
        "format": "frgd-faces-shards-v1",
        "source": str(root),
        "shards": shards,
        "count": len(recs),
        "splits": dict(Counter(r.split for r in recs)),
        "max_mib": max_mib,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (out / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    return index


def compute_embeddings(
    out: Path, encoder, n_aug: int = 2, batch: int = 64, backend: str = "dlib", device: str = "cpu"
) -> Path:
    """Embed every face in the shards of ``out`` (+ ``n_aug`` fixed augmentations of single-photo identities)."""
    import torch

    from frgd.diffusion.training.data import ShardStore, augment_reference, fixed_aug_seed

    store = ShardStore(out)
    recs = store.records
    per_split_id = Counter((r.split, r.identity) for r in recs)
    files = [r.file for r in recs]

    def run(imgs: list[np.ndarray]) -> np.ndarray:
        x = torch.from_numpy(np.stack(imgs).astype(np.float32) / 255.0).permute(0, 3, 1, 2).to(device)
        with torch.no_grad():
            return encoder.embed(x).float().cpu().numpy()

    emb: list[np.ndarray] = []
    dim = None
    t0 = time.perf_counter()
    for i in range(0, len(recs), batch):
        e = run([store.read(r.file) for r in recs[i : i + batch]])
        dim = e.shape[1]
        emb.append(e)
        logger.info("embedded %d/%d (%.1f img/s)", i + len(e), len(recs), (i + len(e)) / (time.perf_counter() - t0))
    emb_arr = np.concatenate(emb).astype(np.float32)
    aug = np.zeros((len(recs), n_aug, dim), np.float32)
    single = [i for i, r in enumerate(recs) if per_split_id[(r.split, r.identity)] == 1]
    jobs = [(i, k) for i in single for k in range(n_aug)]
    for j in range(0, len(jobs), batch):
        chunk = jobs[j : j + batch]
        imgs = [
            augment_reference(store.read(files[i]), np.random.default_rng(fixed_aug_seed(files[i], k)))
            for i, k in chunk
        ]
        e = run(imgs)
        for (i, k), v in zip(chunk, e):
            aug[i, k] = v
        logger.info("augmented references %d/%d", j + len(chunk), len(jobs))
    path = out / "embeddings.npz"
    np.savez(path, files=np.array(files), emb=emb_arr, aug_emb=aug, backend=np.array(backend))
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", help="faces128 folder (labels.csv); not needed with --embed-only")
    ap.add_argument("--out", required=True, help="output folder (never inside the committed tree)")
    ap.add_argument("--splits", nargs="+", default=["train", "val"], choices=["train", "val"])
    ap.add_argument("--max-mib", type=float, default=40.0)
    ap.add_argument("--limit", type=int, help="pack only the first N faces of each split (testing, smoke runs)")
    ap.add_argument("--embeddings", action="store_true", help="also compute identity embeddings")
    ap.add_argument(
        "--embed-only",
        action="store_true",
        help="only compute OUT/embeddings.npz for existing shards in OUT (e.g. on the GPU machine: --device cuda)",
    )
    ap.add_argument("--backend", default="dlib", help="identity backend (frgd.identity.get_identity_encoder)")
    ap.add_argument("--aug", type=int, default=2, help="fixed reference augmentations per single-photo face")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    out = Path(args.out)
    if not args.embed_only:
        if not args.root:
            ap.error("--root is required unless --embed-only")
        index = pack(Path(args.root), out, args.splits, args.max_mib, args.limit)
        summary = {k: index[k] for k in ("count", "splits")} | {"shards": len(index["shards"])}
        sys.stdout.write(json.dumps(summary) + "\n")
    if args.embeddings or args.embed_only:
        from frgd.identity import get_identity_encoder

        enc = get_identity_encoder(args.backend, args.device)
        path = compute_embeddings(out, enc, args.aug, args.batch, args.backend, args.device)
        sys.stdout.write(f"embeddings: {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
