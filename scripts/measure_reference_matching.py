"""Measure how well the reference rule picks the face a reference is of, in photos of two people.

For each of N seeded pairs of faces128 val identities A and B (A with at least two photos): face A, face B, a
reference (another photo of A) and a stranger's photo (a third identity C). Each face is area-shrunk by the scale and
bicubic-upscaled back to its 128 crop (what a small face's aligned crop looks like); the guidance encoder (dlib)
scores both against each reference, and :func:`frgd.restore.choose_reference_faces` decides, with the identity
meter's "unlikely" line as its floor. Written per scale and margin: the share of pairs decided, of those the share
given to B (wrong), and the share of stranger references given to A or B.

Usage (about 2 CPU minutes)::

    python scripts/measure_reference_matching.py --faces ../shared/data/faces128 \\
        --out docs/results/reference_matching.json
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import time
from collections import defaultdict
from pathlib import Path
from unittest import mock

import cv2
import numpy as np
import torch
import torch.nn.functional as F

import frgd.restore.pipeline as restore_pipeline
from frgd.identity import get_identity_encoder
from frgd.identity.meter import load_calibrations
from frgd.io import load_rgb
from frgd.restore import REFERENCE_MATCH_MARGIN, choose_reference_faces
from frgd.tensor import image_to_tensor

logger = logging.getLogger("measure_reference_matching")
SCALES = (1, 4, 8, 16)
MARGINS = (0.0, 0.02, REFERENCE_MATCH_MARGIN, 0.08)


def shrink(img: np.ndarray, scale: int) -> np.ndarray:
    """``img`` (128, 128, 3) area-shrunk ``scale`` times and bicubic-upscaled back."""
    if scale == 1:
        return img
    n = int(round(img.shape[0] / scale))
    small = cv2.resize(img, (n, n), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, img.shape[1::-1], interpolation=cv2.INTER_CUBIC)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faces", type=Path, required=True, help="the faces128 folder (labels.csv, val/)")
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t0 = time.perf_counter()
    by_id: dict[str, list[str]] = defaultdict(list)
    with (args.faces / "labels.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["split"] == "val":
                by_id[row["identity"]].append(row["file"])
    ids = sorted(by_id)
    multi = [i for i in ids if len(by_id[i]) >= 2]
    rng = np.random.default_rng(args.seed)
    enc = get_identity_encoder("dlib", "cpu")

    def embed(imgs: list[np.ndarray]) -> torch.Tensor:
        with torch.inference_mode():
            return F.normalize(enc.embed(torch.cat([image_to_tensor(i) for i in imgs])).float(), dim=1)

    floor = load_calibrations()["dlib"].unlikely_threshold
    sims: dict[int, list[tuple[float, float]]] = defaultdict(list)
    strangers: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for k in range(args.pairs):
        a = multi[rng.integers(len(multi))]
        b, c = a, a
        while b == a:
            b = ids[rng.integers(len(ids))]
        while c in (a, b):
            c = ids[rng.integers(len(ids))]
        fa, fr = rng.choice(by_id[a], 2, replace=False)
        fb = by_id[b][rng.integers(len(by_id[b]))]
        fc = by_id[c][rng.integers(len(by_id[c]))]
        face_a, ref, face_b, ref_c = (load_rgb(args.faces / f) for f in (fa, fr, fb, fc))
        r, rc = embed([ref, ref_c])
        for s in SCALES:
            e = embed([shrink(face_a, s), shrink(face_b, s)])
            sims[s].append((float(e[0] @ r), float(e[1] @ r)))
            strangers[s].append((float(e[0] @ rc), float(e[1] @ rc)))
        if k % 50 == 0:
            logger.info("%d/%d pairs", k, args.pairs)
    rows = []
    for s in SCALES:
        for m in MARGINS:
            with mock.patch.object(restore_pipeline, "REFERENCE_MATCH_MARGIN", m):
                picks = [choose_reference_faces([1, 2], similarities=v, min_similarity=floor).numbers
                         for v in sims[s]]  # fmt: skip
                given = [choose_reference_faces([1, 2], similarities=v, min_similarity=floor).numbers
                         for v in strangers[s]]  # fmt: skip
            decided = [p for p in picks if p]
            rows.append({
                "scale": s, "crop_px": 128 // s, "margin": m, "pairs": len(picks),
                "decided": round(len(decided) / len(picks), 4),
                "wrong_of_decided": round(sum(p == (2,) for p in decided) / max(len(decided), 1), 4),
                "stranger_reference_given": round(sum(bool(g) for g in given) / len(given), 4),
            })  # fmt: skip
    result = {
        "command": "python scripts/measure_reference_matching.py",
        "encoder": "dlib",
        "margin_in_use": REFERENCE_MATCH_MARGIN,
        "floor": floor,
        "pairs": args.pairs,
        "seed": args.seed,
        "rows": rows,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for row in rows:
        if row["margin"] == REFERENCE_MATCH_MARGIN:
            logger.info("1/%d: decided %.1f %%, wrong %.1f %% of those; a stranger's reference given %.1f %%",
                        row["scale"], 100 * row["decided"], 100 * row["wrong_of_decided"],
                        100 * row["stranger_reference_given"])  # fmt: skip
    logger.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
