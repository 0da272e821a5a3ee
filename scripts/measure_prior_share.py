"""Measure FRGD's content target with the estimated prior's share against given shares (docs/frgd_sampling.md, "The
content target: the prior's share").

For each degradation ``SCALE:PRESET``, faces128 val pairs ``--first`` .. ``--first + --limit`` (default 50-65, the
tuning faces) are degraded like ``frgd eval faces`` and restored once each at the slider's content end (s = 0, no
reference, seed = pair index) with ``prior_share`` = each of ``--shares`` (``auto`` = estimated); printed and written
as JSON: the mean share used, PSNR, detail and the judge's similarity to the true face (research data: the judge is
for evaluation only).

    FRGD_JUDGE=../shared/weights/judge python scripts/measure_prior_share.py --faces ../shared/data/faces128 \
        --out docs/results/prior_share_tuning_round_007.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger("measure_prior_share")

CONDITIONS = "1.5:clean,4:clean,8:clean,1.5:mild,4:mild,8:mild,4:medium"


@dataclass
class Tuning:
    """What the tuning-face measurements share: the installed pipeline, the true faces of pairs ``--first`` ..
    ``--first + --limit``, the judge and its embeddings of them, the shares to try (``None`` = estimated) and the
    degradations ``(scale, preset)``."""

    pipe: Any
    root: Path
    gts: list[np.ndarray]
    judge: Any
    gt_emb: torch.Tensor
    shares: list[float | None]
    conditions: list[tuple[float, str]]


def tuning_parser(description: str, conditions: str, shares: str) -> argparse.ArgumentParser:
    """The common flags (``--faces --out --first --limit --conditions --shares --threads``) with these defaults."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--faces", required=True, help="faces128 folder")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--first", type=int, default=50)
    p.add_argument("--limit", type=int, default=16)
    p.add_argument("--conditions", default=conditions, help=f"SCALE:PRESET,... (default {conditions})")
    p.add_argument("--shares", default=shares, help=f"auto and/or numbers in [0, 1] (default {shares})")
    p.add_argument("--threads", type=int, default=2)
    return p


def tuning_setup(args: argparse.Namespace) -> Tuning:
    """Logging, threads, the installed pipeline (CPU), the true faces and the judge's embeddings of them."""
    from frgd.diffusion.training.data import read_image
    from frgd.eval.faces import select_pairs
    from frgd.identity.judge import Judge
    from frgd.restore import load_frgd_pipeline
    from frgd.tensor import image_to_tensor

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    root = Path(args.faces)
    pipe = load_frgd_pipeline(None, device="cpu")
    if pipe.prior_share_net is None:
        logger.warning("no prior-share estimator installed: 'auto' is share 0")
    pairs = select_pairs(root, args.first + args.limit)[args.first :]
    gts = [read_image(root / t) for t, _, _ in pairs]
    judge = Judge()
    gt_emb = judge.embed(torch.cat([image_to_tensor(x) for x in gts]))
    shares = [None if v == "auto" else float(v) for v in args.shares.split(",")]
    conditions = [(float(c.split(":")[0]), c.split(":")[1]) for c in args.conditions.split(",")]
    return Tuning(pipe, root, gts, judge, gt_emb, shares, conditions)


def main(argv: list[str] | None = None) -> int:
    from frgd.eval.faces import degrade_faces, face_metrics
    from frgd.tensor import image_to_tensor, tensor_to_image

    args = tuning_parser(__doc__.split("\n")[0], CONDITIONS, "auto,0").parse_args(argv)
    t0 = time.perf_counter()
    t = tuning_setup(args)
    pipe, root, gts, judge, gt_emb, shares = t.pipe, t.root, t.gts, t.judge, t.gt_emb, t.shares
    rows = []
    for scale, preset in t.conditions:
        lqs = degrade_faces(gts, scale, preset, 0, args.first)
        for share in shares:
            outs, used = [], []
            for i in range(0, len(lqs), 8):
                deg = torch.cat([image_to_tensor(x) for x in lqs[i : i + 8]])
                n = deg.shape[0]
                seeds = [args.first + k for k in range(i, i + n)]
                r = pipe(deg, identity_strength=0.0, num_samples=n, seeds=seeds, prior_share=share)
                outs += [tensor_to_image(x) for x in r.images]
                used += (r.params["prior_share"] or {"values": [0.0] * n})["values"]
            m = face_metrics(outs, gts)
            emb = judge.embed(torch.cat([image_to_tensor(x) for x in outs]))
            sim = float((emb * gt_emb).sum(1).mean())
            row = {"scale": scale, "preset": preset, "prior_share": "auto" if share is None else share,
                   "mean_share": float(np.mean(used)), **m, "judge_similarity": sim}  # fmt: skip
            rows.append(row)
            logger.info("x%g %-6s share=%s: mean share %.2f  PSNR %.2f detail %.3f judge %.3f", scale, preset,
                        row["prior_share"], row["mean_share"], m["psnr"], m["detail"], sim)  # fmt: skip
    result = {"command": "python scripts/measure_prior_share.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "faces": str(root), "pairs": [args.first, args.first + len(gts) - 1], "slider": 0.0,
              "reference": None, "model": pipe.name, "prior": pipe.prior_name,
              "estimator": pipe.prior_share_net is not None, "rows": rows,
              "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
    Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
