"""Measure damage repair: synthetic scratches on faces128 val inputs, restored without and with the damage marked.

For each of ``--limit`` val faces (the evaluation's pairs from ``--first``) and each ``--scales`` factor, the input is
the evaluation's degradation (:func:`frgd.eval.faces.degrade_faces`, ``--preset``); 1-3 random one-pixel scratches
(polylines, light or dark) are drawn on it at the input's own resolution, and the damage mask is the scratches at
128 px (nearest) widened by one pixel, as a brush would mark them. Rows (one FRGD sample each, seed = face index,
slider ``--identity``, no reference):

- ``clean``: FRGD on the unscratched input (the ceiling);
- ``scratched``: FRGD on the scratched input, damage not marked;
- ``marked``: FRGD on the scratched input with ``damage=`` (the input filled there, the prior's estimate the target);
- ``marked_fill_only``: FRGD on the input filled beforehand, without ``damage=`` (what the prior's target adds);
- ``bicubic_scratched`` / ``bicubic_filled``: the bicubic upscale of the scratched / filled input.

Figures: PSNR, SSIM and detail over the face, and PSNR inside the damage mask (``damage_psnr``), against the true face.

    python scripts/measure_damage.py --faces ../shared/data/faces128 --out docs/results/damage_repair.json
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from frgd.diffusion.damage import damage_at, fill_damage
from frgd.diffusion.training.data import read_image
from frgd.eval.faces import degrade_faces, face_metrics, select_pairs
from frgd.restore.methods import load_frgd_pipeline
from frgd.tensor import image_to_tensor, tensor_to_image

logger = logging.getLogger("measure_damage")
ROWS = ("clean", "scratched", "marked", "marked_fill_only", "bicubic_scratched", "bicubic_filled")


def scratches(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """``(h, w)`` bool: 1-3 one-pixel polylines of 3-5 points that wander across the face."""
    m = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        pts = [rng.uniform([0, 0], [w, h])]
        ang = rng.uniform(0, np.pi)
        for _ in range(int(rng.integers(2, 5))):
            ang += rng.normal(0, 0.3)
            pts.append(pts[-1] + rng.uniform(0.15, 0.35) * w * np.array([np.cos(ang), np.sin(ang)]))
        cv2.polylines(m, [np.round(np.array(pts)).astype(np.int32)], False, 1, thickness=1)
    return m.astype(bool)


def upscale(img: np.ndarray) -> np.ndarray:
    return tensor_to_image(F.interpolate(image_to_tensor(img), size=(128, 128), mode="bicubic", align_corners=False)[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--faces", required=True, help="faces128 folder")
    ap.add_argument("--out", required=True, help="JSON output")
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--first", type=int, default=0, help="first evaluation pair")
    ap.add_argument("--scales", default="2,4")
    ap.add_argument("--preset", default="mild")
    ap.add_argument("--identity", type=float, default=0.5)
    ap.add_argument("--grid", help="PNG of the first 6 faces per scale (scratched, scratched FRGD, marked, clean, "
                    "truth); look, never commit")  # fmt: skip
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.manual_seed(0)
    pairs = select_pairs(args.faces, args.first + args.limit)[args.first :]
    gts = [read_image(Path(args.faces) / p[0]) for p in pairs]
    pipe = load_frgd_pipeline(device="cpu")
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None and k != "grid")
    result: dict = {"command": f"python scripts/measure_damage.py {flags}", "rows": ROWS, "scales": {}}
    t0 = time.perf_counter()
    for scale in [float(s) for s in args.scales.split(",")]:
        lqs = degrade_faces(gts, scale, preset=args.preset, first=args.first)
        outs: dict[str, list[np.ndarray]] = {k: [] for k in ROWS}
        inside: dict[str, list[float]] = {k: [] for k in ROWS}
        grid = []
        covered = []
        for i, (gt, lq) in enumerate(zip(gts, lqs)):
            rng = np.random.default_rng([7, args.first + i])
            h, w = lq.shape[:2]
            hit = scratches(h, w, rng)
            bad = lq.copy()
            bad[hit] = rng.uniform(0.85, 1.0) if rng.random() < 0.5 else rng.uniform(0.0, 0.12)
            d128 = cv2.resize(hit.astype(np.uint8), (128, 128), interpolation=cv2.INTER_NEAREST)
            d128 = cv2.dilate(d128, np.ones((3, 3), np.uint8)).astype(np.float32)
            covered.append(float(d128.mean()))
            dmg = torch.from_numpy(d128)[None, None]
            filled = tensor_to_image(fill_damage(image_to_tensor(bad), damage_at(dmg, (h, w)))[0], np.float32)
            row = {}
            for name, inp, d in (("clean", lq, None), ("scratched", bad, None), ("marked", bad, dmg),
                                 ("marked_fill_only", filled, None)):  # fmt: skip
                o = pipe(image_to_tensor(inp), identity_strength=args.identity, seeds=[i], damage=d)
                row[name] = tensor_to_image(o.images[0])
            row["bicubic_scratched"], row["bicubic_filled"] = upscale(bad), upscale(filled)
            m = d128 > 0.5
            for k in ROWS:
                outs[k].append(row[k])
                err = ((row[k].astype(np.float64) - gt.astype(np.float64)) ** 2)[m].mean()
                inside[k].append(float(10 * np.log10(255.0**2 / max(err, 1e-10))))
            if i < 6:
                grid.append(np.concatenate([upscale(bad), row["scratched"], row["marked"], row["clean"], gt], 1))
            logger.info("x%g face %d/%d (%.0f s)", scale, i + 1, len(gts), time.perf_counter() - t0)
        key = f"x{scale:g}"
        result["scales"][key] = {
            "damaged_share_of_face": round(float(np.mean(covered)), 4),
            **{
                k: {
                    **{m: round(v, 4) for m, v in face_metrics(outs[k], gts).items()},
                    "damage_psnr": round(float(np.mean(inside[k])), 3),
                }
                for k in ROWS
            },  # fmt: skip
        }
        logger.info("%s %s", key, json.dumps(result["scales"][key]))
        if args.grid:
            g = Path(args.grid)
            cv2.imwrite(str(g.with_name(f"{g.stem}_{key}{g.suffix}")), cv2.cvtColor(np.concatenate(grid, 0),
                                                                                   cv2.COLOR_RGB2BGR))  # fmt: skip
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["torch_threads"] = torch.get_num_threads()
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
