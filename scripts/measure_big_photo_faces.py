"""Measure how many small faces detection finds in large photos, with and without the full-resolution tiled pass.

Synthetic photos of 12 and 24 MP (a BSDS400 photo resized to the size, mild sensor noise) get faces128 val faces
pasted with a feathered edge at face widths from 16 to 192 px (the crop is 2.13x the face width), a few of each width,
at seeded places that do not overlap. Their true landmarks are the faces128 template's, moved with the paste. For
each photo and each mode (``tiles=False``: the whole-image pass only, downscaled to :data:`MAX_DETECT_PIXELS`;
``tiles=True``: plus the tiled pass), the script counts per face width the faces found (a detection whose eye midpoint
lies within half an eye distance of the true one), the eye error of those found (mean of the two eyes' distances to
the truth, in eye distances), the other detections (false faces), and the time. Only counts and errors are written.

Usage (about 5 CPU minutes)::

    python scripts/measure_big_photo_faces.py --faces ../shared/data/faces128 \\
        --backgrounds ../shared/data/sr/train/BSDS400 --out docs/results/big_photo_faces.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from frgd.faces.align import feather_mask, template
from frgd.faces.detect import MAX_DETECT_PIXELS, detect_faces
from frgd.io import load_rgb

logger = logging.getLogger("measure_big_photo_faces")

FACE_WIDTH_IN_CROP = 67.0
"""Face width in a 128 faces128 crop, px (about 2.13 eye distances; as scripts/measure_detection_scores.py)."""
WIDTHS = (16, 20, 24, 32, 48, 96, 192)
SIZES = ((4000, 3000), (6000, 4000))


def place(rng: np.random.Generator, shape: tuple[int, int], sides: list[int]) -> list[tuple[int, int]]:
    """Top-left corners (in the order of ``sides``) for squares of ``sides`` px in an image of ``shape`` ``(H, W)``:
    none within half a side of another, none within a side of the border; the largest are placed first."""
    h, w = shape
    taken: list[tuple[int, int, int]] = []
    corners: dict[int, tuple[int, int]] = {}
    for i in sorted(range(len(sides)), key=lambda j: -sides[j]):
        side = sides[i]
        for _ in range(10_000):
            x, y = int(rng.integers(side, w - 2 * side)), int(rng.integers(side, h - 2 * side))
            if not any(
                x < tx + 1.5 * ts and tx < x + 1.5 * side and y < ty + 1.5 * ts and ty < y + 1.5 * side
                for tx, ty, ts in taken
            ):
                taken.append((x, y, side))
                corners[i] = (x, y)
                break
        else:
            raise RuntimeError("no room for every face; use a larger photo or fewer faces")
    return [corners[i] for i in range(len(sides))]


def make_photo(bg: np.ndarray, faces: list[np.ndarray], size: tuple[int, int], widths: list[int], seed: int):
    """The photo ``(H, W, 3)`` uint8 and, per face, ``(width, true landmarks (5, 2) pixel centres)``."""
    rng = np.random.default_rng(seed)
    w, h = size
    photo = cv2.resize(bg, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    sides = [int(round(128 * fw / FACE_WIDTH_IN_CROP)) for fw in widths]
    truth = []
    for face, fw, side, (x, y) in zip(faces, widths, sides, place(rng, (h, w), sides)):
        small = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)
        a = cv2.resize(feather_mask(128, 0.15), (side, side), interpolation=cv2.INTER_AREA)[..., None]
        photo[y : y + side, x : x + side] = a * small + (1 - a) * photo[y : y + side, x : x + side]
        k = side / 128.0
        truth.append((fw, (template(128) + 0.5) * k - 0.5 + (x, y)))
    photo += rng.normal(0, 3.0, photo.shape).astype(np.float32)
    return np.clip(photo, 0, 255).astype(np.uint8), truth


def score(found, truth) -> tuple[list[dict], int]:
    """Per true face: found, eye error (eye distances); and the count of detections that match no true face."""
    used = set()
    rows = []
    for fw, lm in truth:
        mid, ed = lm[:2].mean(0), float(np.linalg.norm(lm[1] - lm[0]))
        best, best_d = None, 0.5 * ed
        for i, f in enumerate(found):
            d = float(np.linalg.norm(f.landmarks_px[:2].mean(0) - mid))
            if i not in used and d < best_d:
                best, best_d = i, d
        row = {"width": fw, "found": best is not None}
        if best is not None:
            used.add(best)
            err = np.linalg.norm(found[best].landmarks_px[:2] - lm[:2], axis=1).mean() / ed
            row["eye_error"] = float(err)
        rows.append(row)
    return rows, len(found) - len(used)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--faces", required=True, help="faces128 folder (val faces are pasted)")
    p.add_argument("--backgrounds", required=True, help="folder of background photos")
    p.add_argument("--out", required=True)
    p.add_argument("--photos", type=int, default=2, help="photos per size")
    p.add_argument("--per-width", type=int, default=3, help="faces of each width per photo")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rng = np.random.default_rng(args.seed)
    val = sorted((Path(args.faces) / "val").rglob("*.jpg"))
    bgs = sorted(Path(args.backgrounds).glob("*.jpg"))
    records = []
    for size in SIZES:
        for k in range(args.photos):
            widths = [w for w in WIDTHS for _ in range(args.per_width)]
            faces = [load_rgb(val[i]) for i in rng.choice(len(val), len(widths), replace=False)]
            bg = load_rgb(bgs[int(rng.integers(len(bgs)))])
            photo, truth = make_photo(bg, faces, size, widths, int(rng.integers(1 << 31)))
            for tiles in (False, True):
                t0 = time.perf_counter()
                found = detect_faces(photo, tiles=tiles)
                dt = time.perf_counter() - t0
                rows, false = score(found, truth)
                records.append({"size": list(size), "photo": k, "tiles": tiles, "seconds": round(dt, 2),
                                "false_faces": false, "faces": rows})  # fmt: skip
                logger.info("%dx%d #%d tiles=%s: %d/%d found, %d false, %.1f s", size[0], size[1], k, tiles,
                            sum(r["found"] for r in rows), len(rows), false, dt)  # fmt: skip
    summary = {}
    for tiles in (False, True):
        key = "tiled" if tiles else "whole_image_only"
        rs = [r for r in records if r["tiles"] == tiles]
        per = {}
        for fw in WIDTHS:
            for size in SIZES:
                rows = [f for r in rs if r["size"] == list(size) for f in r["faces"] if f["width"] == fw]
                errs = [f["eye_error"] for f in rows if f["found"]]
                per[f"{fw}px_{size[0] * size[1] / 1e6:.0f}MP"] = {
                    "found": sum(f["found"] for f in rows), "of": len(rows),
                    "eye_error_median": round(float(np.median(errs)), 3) if errs else None}  # fmt: skip
        summary[key] = {
            "per_width": per,
            "false_faces": sum(r["false_faces"] for r in rs),
            "seconds": {f"{s[0] * s[1] / 1e6:.0f}MP": round(float(np.mean([r["seconds"] for r in rs
                                                                              if r["size"] == list(s)])), 2)
                        for s in SIZES},
        }  # fmt: skip
    out = {
        "command": "python scripts/measure_big_photo_faces.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "max_detect_pixels": MAX_DETECT_PIXELS,
        "threads": int(__import__("torch").get_num_threads()),
        "summary": summary,
        "photos": records,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    logger.info("%s", json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
