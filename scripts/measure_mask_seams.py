"""Seams of masked resampling: does a region resampled under a brush mask join the face around it?

The editor's patch brush and ``frgd enhance --mask`` resample a painted region of a face and keep the rest. Here the
face around the region is the ground truth (a stand-in for a good earlier restore), the model's input is the face's
fixed x4 / x8 degradation (:func:`frgd.eval.faces.degrade_faces`), and the region is a soft round brush dab (the
editor's default brush: linear fade over half the radius) over both eyes or over the mouth. Each face is resampled
with the installed FRGD model at the default slider, no reference, and composited as the product pastes it
(``P * sample + (1 - P) * base`` with the soft mask ``P``; the sampler itself keeps ``P > 0.5``), for:

* ``clean``: the sampler's default fusion (the model sees the kept region as it is);
* ``noisy``: noisy fusion (the model sees the kept region at each step's noise level, training's other mode);
* ``paste``: no fusion: a whole-face sample of the same seed pasted through the same mask (what a user gets by
  pasting a region of an unmasked sample);

and measured with :func:`frgd.metrics.seams.seam_excess` (the luma step across the mask's border in excess of the
ground truth's, levels; 0 = seamless) at the border and 3 px inside it, and by PSNR inside the region.

Usage (about 6 CPU minutes for 16 faces at both scales)::

    python scripts/measure_mask_seams.py --faces ../shared/data/faces128 --out docs/results/mask_seams.json
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from frgd.devices import describe_device
from frgd.eval.faces import degrade_faces, select_pairs
from frgd.faces.align import template
from frgd.metrics.psnr_ssim import psnr
from frgd.metrics.seams import seam_excess
from frgd.restore import load_frgd_pipeline
from frgd.tensor import image_to_tensor, tensor_to_image
from frgd_studio.brush import disc
from frgd_studio.model.settings import EditorSettings

logger = logging.getLogger("measure_mask_seams")
BRUSH_FEATHER = EditorSettings().brush_feather
"""The editor's default brush feather (fraction of the radius over which a dab fades out)."""
REGIONS = {"eyes": 14.0, "mouth": 18.0}
"""Brush radius (crop px) of each region."""
VARIANTS = ("clean", "noisy", "paste")
INSET = 3


def brush_mask(region: str, size: int = 128) -> np.ndarray:
    """``(size, size)`` float32 soft mask of ``region``: the editor's round dabs (:func:`frgd_studio.brush.disc`, fading
    over ``BRUSH_FEATHER`` of the radius) at the template's eyes or mouth centre."""
    t = template(size)
    centres = [t[0], t[1]] if region == "eyes" else [(t[3] + t[4]) / 2]
    r = REGIONS[region] * size / 128
    return np.maximum.reduce([disc(float(cx), float(cy), r, BRUSH_FEATHER, size) for cx, cy in centres])


def composite(sample: np.ndarray, base: np.ndarray, soft: np.ndarray) -> np.ndarray:
    """The product's paste of a crop sample through the soft mask -> uint8."""
    a = soft[..., None]
    return np.clip(np.round(a * sample.astype(np.float32) + (1 - a) * base.astype(np.float32)), 0, 255).astype(np.uint8)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faces", type=Path, required=True, help="faces128 folder (labels.csv, val/)")
    ap.add_argument("--limit", type=int, default=16, help="validation faces")
    ap.add_argument("--scales", default="4,8", help="input scales, comma-separated")
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t0 = time.perf_counter()
    torch.manual_seed(0)
    pipe = load_frgd_pipeline(device="cpu")
    pairs = select_pairs(args.faces, args.limit)
    gts = [np.asarray(Image.open(args.faces / p[0]).convert("RGB")) for p in pairs]
    rows = []
    for scale in [float(s) for s in args.scales.split(",")]:
        lqs = degrade_faces(gts, scale)
        whole = [tensor_to_image(pipe(image_to_tensor(lq), seeds=k, num_samples=1).images[0]) for k, lq in
                 enumerate(lqs)]  # fmt: skip
        for region in REGIONS:
            soft = brush_mask(region)
            hard = soft > 0.5
            per: dict[str, list[tuple[float, float, float]]] = {v: [] for v in VARIANTS}
            for k, (gt, lq) in enumerate(zip(gts, lqs, strict=True)):
                for variant in VARIANTS:
                    if variant == "paste":
                        sample = whole[k]
                    else:
                        out = pipe(image_to_tensor(lq), mask=torch.from_numpy(soft)[None, None],
                                   base=image_to_tensor(gt), seeds=k, num_samples=1, fusion=variant)  # fmt: skip
                        sample = tensor_to_image(out.images[0])
                    res = composite(sample, gt, soft)
                    inside = psnr(res[hard], gt[hard])
                    per[variant].append((seam_excess(res, gt, soft), seam_excess(res, gt, soft, INSET), inside))
            for variant, vals in per.items():
                a = np.array(vals)
                n = len(a)
                row = {
                    "scale": scale,
                    "region": region,
                    "variant": variant,
                    "faces": n,
                    "seam_excess": float(a[:, 0].mean()),
                    "seam_excess_se": float(a[:, 0].std(ddof=1) / np.sqrt(n)),
                    "inside_excess": float(a[:, 1].mean()),
                    "inside_excess_se": float(a[:, 1].std(ddof=1) / np.sqrt(n)),
                    "psnr_inside": float(a[:, 2].mean()),
                }
                rows.append(row)
                logger.info(
                    "x%g %-5s %-5s seam %+.2f ± %.2f levels (3 px inside %+.2f ± %.2f), PSNR inside %.2f dB",
                    scale, region, variant, row["seam_excess"], row["seam_excess_se"], row["inside_excess"],
                    row["inside_excess_se"], row["psnr_inside"],
                )  # fmt: skip
    result = {
        "what": "seams of masked resampling (scripts/measure_mask_seams.py)",
        "model": pipe.name,
        "faces": len(gts),
        "brush_feather": BRUSH_FEATHER,
        "brush_radius_px": REGIONS,
        "inset_px": INSET,
        "device": describe_device(pipe.device),
        "seconds": round(time.perf_counter() - t0, 1),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    logger.info("wrote %s (%.0f s)", args.out, result["seconds"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
