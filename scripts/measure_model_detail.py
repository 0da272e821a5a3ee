"""Where fine detail is lost: the FRGD model's own detail, one model against another, sampler and codec aside.

After round 8 the evaluation's ``detail`` fell (docs/training_rounds.md, "Why detail fell in round 8"). This asks
the models themselves, on the round pack's validation pairs (the first pairs of ``frgd eval faces``; ground truth
lossless) at each ``--scales`` (the evaluation's degradation, seed 0), for every ``--model`` folder:

- ``kept`` / ``invented``: the model's clean estimate from the true face / the bicubic upscale of the input noised
  to ``t`` (:mod:`frgd.eval.model_detail`, which the training round also runs after every round);
- ``sampled``: whole samples as the round's validation draws them (from pure noise, content guidance 1, no
  reference, no back-projection; ``--sample-faces`` faces): the detail a sample ends with.

Each reports :func:`~frgd.metrics.detail.detail_score` (1 = the true face's fine detail) and PSNR against the true
face; the same noise for every model. CPU: about 4 minutes per model with the defaults.

    python scripts/measure_model_detail.py --pack .carry/round/pack --model OLD_DIR --model NEW_DIR \\
        --json-out docs/results/model_detail_round_007_008.json
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch

logger = logging.getLogger("measure_model_detail")


def sampled_row(model_dir: str, gts, scale: float) -> dict:
    """``sampled`` row (module docstring): the round validation's content-end samples, seeds 0..N-1."""
    from frgd.diffusion.sampling.guidance import GuidanceWeights
    from frgd.diffusion.sampling.pipeline import FRGDPipeline
    from frgd.eval.faces import degrade_faces, face_metrics
    from frgd.tensor import image_to_tensor, tensor_to_image

    pipe = FRGDPipeline.from_pretrained(model_dir, device="cpu", prior=None)
    lq = torch.cat([image_to_tensor(x) for x in degrade_faces(list(gts), scale)])
    w = GuidanceWeights(identity=0.0, content=1.0, cfg=0.0, resample=0)
    out = pipe(lq, num_samples=len(gts), seeds=list(range(len(gts))), weights=w, back_projection=False)
    m = face_metrics([tensor_to_image(x) for x in out.images], list(gts))  # the evaluation's PSNR and detail
    return {"probe": "sampled", "faces": len(gts), "detail": m["detail"], "psnr": m["psnr"]}


def main(argv: list[str] | None = None) -> int:
    from frgd.diffusion.model import load_model_dir
    from frgd.diffusion.training.pack import load_pack
    from frgd.eval.model_detail import MODEL_DETAIL_TIMESTEPS, model_detail

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pack", required=True, help="the round's data pack (frgd round pack): its validation pairs")
    p.add_argument("--model", action="append", required=True, help="FRGD model folder (repeat to compare)")
    p.add_argument("--faces", type=int, default=32, help="validation faces for the one-step probes (default 32)")
    p.add_argument("--sample-faces", type=int, default=16, help="faces sampled whole (default 16; 0: none)")
    p.add_argument("--scales", default="8,4", help="downscale factors (default 8,4; samples at the first only)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json-out", help="JSON file to write")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    pack = load_pack(args.pack)
    n = min(args.faces, len(pack.val_images))
    if n < 2:
        p.error(f"the pack holds {len(pack.val_images)} validation pairs; at least 2 are needed")
    gts = list(pack.val_images[:n])
    refs = torch.from_numpy(pack.val_ref_emb[:n]).float()
    scales = [float(s) for s in args.scales.split(",")]
    result: dict = {"faces": n, "timesteps": list(MODEL_DETAIL_TIMESTEPS), "scales": scales, "models": {}}
    for model_dir in args.model:
        t0 = time.perf_counter()
        bundle = load_model_dir(model_dir, device="cpu")
        model = bundle.model.float().eval()
        res: dict = {}
        for scale in scales:
            rows = model_detail(model, bundle.scheduler, gts, refs, scales=[scale])["scales"][f"x{scale:g}"]
            if args.sample_faces > 0 and scale == scales[0]:
                rows.append(sampled_row(model_dir, gts[: args.sample_faces], scale))
            res[f"x{scale:g}"] = rows
            for r in rows:
                logger.info(
                    "%s x%g %-8s %s detail %.3f PSNR %.2f",
                    model_dir, scale, r["probe"], f"t={r['t']}" if "t" in r else "", r["detail"], r["psnr"],
                )  # fmt: skip
        res["seconds"] = round(time.perf_counter() - t0, 1)
        record = Path(model_dir) / "round.json"  # a landed round's folder says which round it is
        label = f"round {json.loads(record.read_text())['round']}" if record.is_file() else str(model_dir)
        result["models"][label] = res
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=1) + "\n")
        logger.info("wrote %s", args.json_out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
