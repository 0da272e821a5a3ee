"""Measure the MTCNN scores of true faces and of everything else, to set the detection floor.

Positives: faces128 val faces (seeded choice) area-shrunk to a face width of 16, 24, 40 and 80 px (the crop is 2.13x
the face width: eye distance 31.5 px of 128, face ~2.1 eye distances), clean, JPEG q30 or with Gaussian noise
(sigma 12/255), pasted into the middle of a T91 photo resized around them; the score is the best detection whose box
centre lies within a quarter of the pasted crop of its centre (missing: not found). Photos: how many detections fall in
each score band in the given folders of photos (unlabelled: they hold real faces and look-alikes, so look at them
before counting; only the counts are written, nothing of the photos).

Usage (about 15 CPU minutes)::

    python scripts/measure_detection_scores.py --faces ../shared/data/faces128 \\
        --backgrounds ../shared/data/sr/train/T91 \\
        --photos ../shared/data/sr/train/T91 ../shared/data/sr/train/BSDS400 ../shared/data/sr/bench/*/HR \\
        --out docs/results/detection_scores.json
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import cv2
import numpy as np

from frgd.faces.detect import detect_faces
from frgd.faces.rules import FACE_MIN_SCORE
from frgd.io import load_rgb

logger = logging.getLogger("measure_detection_scores")

WIDTHS = (16, 24, 40, 80)
DEGRADATIONS = ("clean", "jpeg30", "noise")
FACE_WIDTH_IN_CROP = 67.0
"""Face width in a 128 faces128 crop, px (about 2.13 eye distances)."""
FLOORS = (0.9, FACE_MIN_SCORE, 0.97, 0.99)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def degrade(face: np.ndarray, how: str, rng: np.random.Generator) -> np.ndarray:
    """``face`` (h, w, 3) uint8 RGB: as is, JPEG q30 (OpenCV, 4:2:0) or with Gaussian noise of sigma 12/255."""
    if how == "jpeg30":
        ok, buf = cv2.imencode(".jpg", face[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 30])
        return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    if how == "noise":
        return np.clip(face + rng.normal(0, 12, face.shape), 0, 255).astype(np.uint8)
    return face


def best_score(canvas: np.ndarray, centre: np.ndarray, radius: float) -> float | None:
    """The best score of a detection centred within ``radius`` px of ``centre`` (None: not found)."""
    best = None
    for f in detect_faces(np.ascontiguousarray(canvas), min_score=0.0):
        c = np.array([(f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2])
        if np.linalg.norm(c - centre) < radius:
            best = f.score if best is None else max(best, f.score)
    return best


def positives(faces_dir: Path, backgrounds: list[Path], n: int, seed: int) -> list[dict]:
    """One record (width, degradation, score or None) per val face, width and degradation."""
    rng = np.random.default_rng(seed)
    val = sorted((faces_dir / "val").rglob("*.jpg"))
    rng.shuffle(val)
    out = []
    for i, path in enumerate(val[:n]):
        face = load_rgb(path)
        bg = load_rgb(backgrounds[i % len(backgrounds)])
        for width in WIDTHS:
            side = int(round(face.shape[0] * width / FACE_WIDTH_IN_CROP))
            small = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
            for how in DEGRADATIONS:
                h, w = max(3 * side, 160), max(4 * side, 200)
                canvas = cv2.resize(bg, (w, h), interpolation=cv2.INTER_AREA)
                y0, x0 = (h - side) // 2, (w - side) // 2
                canvas[y0 : y0 + side, x0 : x0 + side] = degrade(small, how, rng)
                score = best_score(canvas, np.array([x0 + side / 2, y0 + side / 2]), side / 4)
                out.append({"width": width, "degradation": how, "score": score})
        if i % 25 == 0:
            logger.info("positives: %d/%d faces", i, n)
    return out


def photo_scores(folders: list[Path]) -> tuple[list[float], int]:
    """The score of every detection (score >= 0) in every image of ``folders``, and the number of images."""
    scores, images = [], 0
    for folder in folders:
        for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            scores += [f.score for f in detect_faces(load_rgb(path), min_score=0.0)]
            images += 1
    return scores, images


def summarise(pos: list[dict], det: list[float]) -> dict:
    """Per width and degradation: found, score quantiles, kept at each floor; photos: detections per score band."""
    rows = []
    for width in WIDTHS:
        for how in DEGRADATIONS:
            s = [p["score"] for p in pos if p["width"] == width and p["degradation"] == how]
            found = np.array([v for v in s if v is not None])
            quantiles = np.round(np.quantile(found, [0.01, 0.05, 0.5]), 4).tolist() if found.size else None
            rows.append({
                "face_width": width, "degradation": how, "faces": len(s), "found": int(found.size),
                "score_q01_q05_q50": quantiles,
                "kept_at": {f"{fl:g}": int((found >= fl).sum()) for fl in FLOORS},
            })  # fmt: skip
    bands = [0.0, 0.7, 0.8, 0.9, FACE_MIN_SCORE, 0.97, 0.99, 1.0001]
    scores = np.array(det)
    photo_bands = [
        {"from": lo, "to": min(hi, 1.0), "detections": int(((scores >= lo) & (scores < hi)).sum())}
        for lo, hi in zip(bands[:-1], bands[1:])
    ]
    return {"positives": rows, "photo_detection_bands": photo_bands}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faces", type=Path, required=True, help="the faces128 folder (val/)")
    ap.add_argument("--backgrounds", type=Path, required=True, help="folder of photos to paste the faces into")
    ap.add_argument("--photos", type=Path, nargs="*", default=[], help="folders of photos to list detections of")
    ap.add_argument("--n", type=int, default=150, help="val faces (default 150)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t0 = time.perf_counter()
    backgrounds = sorted(p for p in args.backgrounds.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    pos = positives(args.faces, backgrounds, args.n, args.seed)
    det, n_photos = photo_scores(args.photos)
    result = {
        "command": "python scripts/measure_detection_scores.py",
        "floor": FACE_MIN_SCORE,
        "n_faces": args.n,
        "seed": args.seed,
        "widths_px": list(WIDTHS),
        "degradations": list(DEGRADATIONS),
        **summarise(pos, det),
        "photos": [f"{p.parent.name}/{p.name}" for p in args.photos],
        "n_photos": n_photos,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    logger.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
