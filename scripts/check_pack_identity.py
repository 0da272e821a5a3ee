"""Check that a training pack's identity embeddings belong to its faces (a misaligned pack would teach the model to
ignore the reference, and no loss curve would show it).

For a seeded sample of train faces the guidance encoder (dlib) embeds the decoded face and compares it (cosine) with
the pack's embedding of that face, of another photo of the same identity (what training conditions on) and of a
random face; single-photo identities with their augmented-reference embeddings; validation targets with their
reference's embedding and with another target's. Prints JSON.

Usage (about 1 CPU minute)::

    python scripts/check_pack_identity.py .carry/round/pack
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F

from frgd.diffusion.training.pack import load_pack
from frgd.identity import get_identity_encoder


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pack", help="pack folder (frgd round pack)")
    ap.add_argument("--n", type=int, default=200, help="train faces to check (default 200)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    p = load_pack(args.pack)
    enc = get_identity_encoder("dlib", "cpu")
    rng = np.random.default_rng(args.seed)

    def embed(images: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(images.astype(np.float32) / 255.0).permute(0, 3, 1, 2)
        with torch.inference_mode():
            return F.normalize(enc.embed(x).float(), dim=1).numpy()

    ids = p.train_ident
    uniq, counts = np.unique(ids, return_counts=True)
    multi = set(uniq[counts >= 2].tolist())
    order = rng.permutation(len(ids))
    idx = [int(i) for i in order if int(ids[i]) in multi][: args.n]
    lonely = [int(i) for i in order if int(ids[i]) not in multi][: args.n // 2]
    e = embed(p.train_images[idx])
    partner = np.array([e[k] @ p.train_emb[rng.choice(np.flatnonzero((ids == ids[i]) & (np.arange(len(ids)) != i)))]
                        for k, i in enumerate(idx)])  # fmt: skip
    random = np.array([e[k] @ p.train_emb[rng.integers(len(ids))] for k in range(len(idx))])
    el = embed(p.train_images[lonely])
    ev = embed(p.val_images)
    val_own, val_other = (ev * p.val_ref_emb).sum(1), (ev * np.roll(p.val_ref_emb, 1, axis=0)).sum(1)
    result = {
        "pack": str(args.pack),
        "faces": len(idx),
        "own_embedding_cos": {
            "mean": round(float((e * p.train_emb[idx]).sum(1).mean()), 4),
            "min": round(float((e * p.train_emb[idx]).sum(1).min()), 4),
        },  # fmt: skip
        "same_identity_cos_mean": round(float(partner.mean()), 4),
        "random_face_cos_mean": round(float(random.mean()), 4),
        "same_identity_above_random": round(float((partner > random).mean()), 4),
        "single_photo_faces": len(lonely),
        "augmented_reference_cos_mean": round(float((el[:, None] * p.train_aug_emb[lonely]).sum(-1).mean()), 4),
        "val_targets": len(ev),
        "val_reference_cos_mean": round(float(val_own.mean()), 4),
        "val_other_reference_cos_mean": round(float(val_other.mean()), 4),
        "val_reference_above_other": round(float((val_own > val_other).mean()), 4),
    }
    sys.stdout.write(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
