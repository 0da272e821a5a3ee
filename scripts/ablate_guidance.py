"""Guidance ablation: FRGD with explicit guidance weights (not the slider) on faces128 validation faces.

Each ``--variant NAME=identity,content,cfg,strength,harmonise`` is one row: the sampler run with
``GuidanceWeights(identity, content, cfg, strength=strength)`` and ``harmonise`` passes, with the reference of
``frgd eval faces`` (another photo of the same person) and its inputs and seeds (pair ``k`` gets seed ``seed + k``).
``--identity-views`` sets the views identity guidance averages over (default: the product's ``IDENTITY_VIEWS``),
``--identity-gradient`` where it takes its gradient (``x0`` or ``denoiser``; default ``IDENTITY_GRADIENT``).
Rows report PSNR/SSIM, the judge's identity similarity to the ground truth and the guidance encoder's to the
reference, next to bicubic; ``--grid`` writes one column per variant (research data: look at it, never commit it).

Usage (the tuning faces of docs/frgd_sampling.md, outside the evaluation set)::

    .venv/bin/python scripts/ablate_guidance.py --data ../shared/data/faces128 --first 24 --limit 8 --scale 8 \\
        --variant unguided=0,0,1,1,0 --variant s1=0.125,0.5,1,1,0 --variant s1_h1=0.125,0.5,1,1,1 \\
        --json-out docs/results/guidance_ablation_round_003_x8.json --grid /tmp/ablation.png
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from frgd.diffusion.sampling.guidance import (
    IDENTITY_GRADIENT,
    IDENTITY_GRADIENTS,
    IDENTITY_VIEWS,
    VIEWS,
    GuidanceWeights,
    check_views,
)
from frgd.diffusion.sampling.pipeline import similarity
from frgd.diffusion.training.data import read_image
from frgd.eval.faces import degrade_faces, face_metrics, grid_image, reference_embeddings, select_pairs, upscale_faces
from frgd.identity.judge import Judge
from frgd.io import save_image
from frgd.restore import load_frgd_pipeline
from frgd.tensor import image_to_tensor, tensor_to_image

logger = logging.getLogger("ablate_guidance")


def parse_variant(text: str) -> tuple[str, GuidanceWeights]:
    """``NAME=identity,content,cfg,strength,harmonise`` -> ``(NAME, GuidanceWeights)``."""
    name, _, values = text.partition("=")
    parts = values.split(",")
    if not name or len(parts) != 5:
        raise argparse.ArgumentTypeError(f"expected NAME=identity,content,cfg,strength,harmonise, got {text!r}")
    ident, content, cfg, strength = (float(v) for v in parts[:4])
    return name, GuidanceWeights(identity=ident, content=content, cfg=cfg, strength=strength, resample=int(parts[4]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="faces128 folder")
    ap.add_argument("--first", type=int, default=24, help="skip the first K pairs (default 24: the tuning faces)")
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--scale", type=float, default=8.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--scheduler", default="dpmpp")
    ap.add_argument("--variant", type=parse_variant, action="append", required=True)
    ap.add_argument(
        "--identity-views",
        type=lambda t: check_views(t.split(",")),
        default=IDENTITY_VIEWS,
        help=f"comma-separated views of x0_hat for identity guidance, of {', '.join(VIEWS)} "
        f"(default {','.join(IDENTITY_VIEWS)})",
    )
    ap.add_argument(
        "--identity-gradient",
        choices=IDENTITY_GRADIENTS,
        default=IDENTITY_GRADIENT,
        help=f"where identity guidance takes its gradient (default {IDENTITY_GRADIENT})",
    )
    ap.add_argument("--json-out", help="write the rows here (JSON)")
    ap.add_argument("--grid", help="PNG: input, bicubic, one column per variant, ground truth")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    root = Path(args.data)
    pipe = load_frgd_pipeline(None, device="cpu")
    pairs = select_pairs(root, args.first + args.limit)[args.first :]
    gts = [read_image(root / t) for t, _, _ in pairs]
    refs = [read_image(root / r) for _, r, _ in pairs]
    lqs = degrade_faces(gts, args.scale, "clean", args.seed, args.first)
    judge = Judge()
    gt_emb = judge.embed(torch.cat([image_to_tensor(x) for x in gts]))

    def judged(imgs: list[np.ndarray]) -> float:
        emb = judge.embed(torch.cat([image_to_tensor(x) for x in imgs]))
        return float((emb * gt_emb).sum(1).mean())

    ref_emb = reference_embeddings(pipe, refs)
    deg = torch.cat([image_to_tensor(x) for x in lqs])
    bic = upscale_faces(lqs, pipe.size)
    rows = [{"variant": "bicubic", **face_metrics(bic, gts), "judge_similarity": judged(bic)}]
    logger.info("%s", rows[-1])
    columns = [upscale_faces(lqs, pipe.size, "nearest"), bic]
    for name, w in args.variant:
        w = replace(w, identity_views=args.identity_views, identity_gradient=args.identity_gradient)
        t0 = time.perf_counter()
        out = pipe(
            deg,
            references=ref_emb if (w.cfg > 0 or w.identity > 0) else None,
            reference_per_sample=True,
            num_samples=len(lqs),
            seeds=[args.seed + args.first + j for j in range(len(lqs))],
            steps=args.steps,
            scheduler=args.scheduler,
            weights=w,
        )
        imgs = [tensor_to_image(x) for x in out.images]
        rows.append(
            {
                "variant": name,
                "weights": w.as_dict(),
                **face_metrics(imgs, gts),
                "judge_similarity": judged(imgs),
                "guidance_similarity": float(similarity(pipe.identity_encoder, out.images, ref_emb).mean()),
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
        logger.info("%s", rows[-1])
        columns.append(imgs)
    result = {
        "command": " ".join(["scripts/ablate_guidance.py", *sys.argv[1:]]),
        "data": str(root),
        "first_pair": args.first,
        "n_faces": len(pairs),
        "scale": args.scale,
        "steps": args.steps,
        "scheduler": args.scheduler,
        "model": pipe.name,
        "prior": pipe.prior_name,  # the base of whole-face samples (None: bicubic)
        "device": "cpu",
        "rows": rows,
    }
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=1) + "\n")
    if args.grid:
        save_image(args.grid, grid_image([*columns, gts], len(gts)), overwrite=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
