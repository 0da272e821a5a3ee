"""What a masked region is held to: the input (share 0, before) or the prior's share of the content target inside the
mask (the estimated share, now; docs/frgd_sampling.md, "The content target: the prior's share").

A masked Resample (the editor's painted mask, ``frgd enhance --mask``) changes the region under the mask and keeps
the rest: the base, which is the face's earlier result when it has one, else the input's crop. For each degradation
``SCALE:PRESET``, faces128 val pairs ``--first`` .. ``--first + --limit`` (default 50-65, the tuning faces) are degraded
like ``frgd eval faces`` and each face is resampled once per region (the editor's default brush over both eyes, over
the mouth: :func:`measure_mask_seams.brush_mask`), per base (``gt``: the true face, a stand-in for a good earlier
result; ``crop``: the input's bicubic upscale, a first masked Resample) and per share (``--shares``; ``auto`` =
estimated), at the slider's content end (s = 0, no reference, seed = pair index), and pasted as the product pastes it
(:func:`measure_mask_seams.composite`). Measured against the true face: PSNR inside the mask, the whole face's PSNR and
``detail`` (:func:`frgd.eval.faces.face_metrics`), the seam (:func:`frgd.metrics.seams.seam_excess`, levels) and the
judge's similarity (research data: the judge is for evaluation only).

    FRGD_JUDGE=../shared/weights/judge python scripts/measure_mask_target.py --faces ../shared/data/faces128 \\
        --out docs/results/mask_target_tuning_round_007.json
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure_mask_seams import REGIONS, brush_mask, composite  # noqa: E402 - sibling scripts
from measure_prior_share import tuning_parser, tuning_setup  # noqa: E402

logger = logging.getLogger("measure_mask_target")

CONDITIONS = "4:mild,4:medium,8:mild,8:clean"
BASES = ("gt", "crop")


def row_share(share: float | None) -> float | str:
    return "auto" if share is None else share


def paired(a: list[float], b: list[float]) -> dict[str, float | int]:
    """Mean and standard error of ``a - b`` over the faces, and how many faces went up."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return {"mean": float(d.mean()), "se": float(d.std(ddof=1) / np.sqrt(len(d))), "up": int((d > 0).sum()),
            "faces": len(d)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    from frgd.devices import describe_device
    from frgd.eval.faces import degrade_faces, face_metrics, upscale_faces
    from frgd.metrics.psnr_ssim import psnr
    from frgd.metrics.seams import seam_excess
    from frgd.tensor import image_to_tensor, tensor_to_image

    p = tuning_parser(__doc__.split("\n")[0], CONDITIONS, "0,auto")
    p.add_argument("--batch", type=int, default=8, help="faces per sampler call")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    t = tuning_setup(args)
    pipe, gts, judge, gt_emb, shares = t.pipe, t.gts, t.judge, t.gt_emb, t.shares
    rows = []
    for scale, preset in t.conditions:
        lqs = degrade_faces(gts, scale, preset, 0, args.first)
        bases = {"gt": gts, "crop": upscale_faces(lqs, 128)}
        for region in REGIONS:
            soft = brush_mask(region)
            hard = soft > 0.5
            mask = torch.from_numpy(soft)[None, None]
            for base_name in BASES:
                for share in shares:
                    outs, used = [], []
                    for i in range(0, len(lqs), args.batch):
                        deg = torch.cat([image_to_tensor(x) for x in lqs[i : i + args.batch]])
                        n = deg.shape[0]
                        base = torch.cat([image_to_tensor(x) for x in bases[base_name][i : i + n]])
                        seeds = [args.first + k for k in range(i, i + n)]
                        r = pipe(deg, identity_strength=0.0, num_samples=n, seeds=seeds, prior_share=share,
                                 mask=mask, base=base)  # fmt: skip
                        outs += [composite(tensor_to_image(x), b, soft) for x, b in
                                 zip(r.images, bases[base_name][i : i + n], strict=True)]  # fmt: skip
                        used += (r.params["prior_share"] or {"values": [0.0] * n})["values"]
                    m = face_metrics(outs, gts)
                    emb = judge.embed(torch.cat([image_to_tensor(x) for x in outs]))
                    inside = np.array([psnr(o[hard].astype(np.float64), g[hard].astype(np.float64))
                                       for o, g in zip(outs, gts, strict=True)])  # fmt: skip
                    seams = np.array([seam_excess(o, g, soft) for o, g in zip(outs, gts, strict=True)])
                    sims = (emb * gt_emb).sum(1).numpy().astype(np.float64)
                    row = {
                        "scale": scale,
                        "preset": preset,
                        "region": region,
                        "base": base_name,
                        "prior_share": row_share(share),
                        "mean_share": float(np.mean(used)),
                        "psnr_inside": float(inside.mean()),
                        "psnr": m["psnr"],
                        "detail": m["detail"],
                        "seam_excess": float(seams.mean()),
                        "judge_similarity": float(sims.mean()),
                        "per_face": {"psnr_inside": inside.round(4).tolist(), "judge": sims.round(5).tolist()},
                    }
                    if share != shares[0]:  # paired over the faces against the first share's row
                        first = next(r for r in reversed(rows) if r["prior_share"] == row_share(shares[0]))
                        row["paired_vs_first"] = {k: paired(row["per_face"][k], first["per_face"][k])
                                                  for k in ("psnr_inside", "judge")}  # fmt: skip
                    rows.append(row)
                    logger.info("x%g %-6s %-5s base %-4s share=%-4s: mean share %.2f  PSNR inside %.2f (face %.2f) "
                                "detail %.3f seam %+.2f judge %.3f", scale, preset, region, base_name,
                                row["prior_share"], row["mean_share"], row["psnr_inside"], m["psnr"], m["detail"],
                                row["seam_excess"], row["judge_similarity"])  # fmt: skip
                    for k, d in row.get("paired_vs_first", {}).items():
                        logger.info("    %s vs share=%s: %+.3f ± %.3f, %d/%d faces up", k, row_share(shares[0]),
                                    d["mean"], d["se"], d["up"], d["faces"])  # fmt: skip
    result = {
        "what": "a masked region's content target: the input (share 0) against the prior's share inside the mask",
        "command": "python scripts/measure_mask_target.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "model": pipe.name,
        "faces": len(gts),
        "pairs": [args.first, args.first + len(gts)],
        "slider": 0.0,
        "device": describe_device(pipe.device),
        "seconds": round(time.perf_counter() - t0, 1),
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    logger.info("wrote %s (%.0f s)", out, result["seconds"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
