"""Train the prior-share estimator (:class:`frgd.archs.prior_share_arch.PriorShareNet`) on the CPU (no GPU time).

Each step draws one downscale factor ``s`` (log-uniform in ``scale_range``: every face of a step then has the same
size), degrades ``batch`` training faces by :func:`frgd.degrade.degrade_image` at that factor (a share
``clean_share`` by the downscale alone, the rest by the blind mixture of :class:`frgd.degrade.DegradationConfig`:
blur, noise, JPEG, three kernels), runs the shipped FRGD prior on them, and minimises
:func:`frgd.diffusion.content.share_loss` at the content scale, i.e. teaches the share that brings the content target
closest to what the input would be as a clean downscale. Adam, warm-up and cosine decay by the larger of step and time
progress (as :mod:`.train_prior`); validation on faces128 val pairs from ``VAL_FIRST`` (beyond the evaluation's 0-23,
the tuning's 24-35 and the prior's 40-71), degraded by :func:`frgd.eval.faces.degrade_faces` for each of
:data:`VAL_SETS`.

Command used for the shipped weights (README, "Content target")::

    python -m frgd.diffusion.training.train_prior_share train --faces ../shared/data/faces128 --run runs/prior-share
    python -m frgd.diffusion.training.train_prior_share export --run runs/prior-share \
        --out resources/frgd_resources/weights/frgd-prior-share
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...archs.prior_share_arch import PriorShareNet
from ...cpu_training import command_parser, load_run, run_command, save_run, timed_loop, training_record
from ...errors import InputError

logger = logging.getLogger(__name__)

VAL_FIRST = 72
"""First faces128 val pair of the estimator's validation."""
VAL_SETS = ((1.0, "mild"), (1.5, "clean"), (1.5, "mild"), (4.0, "clean"), (4.0, "mild"), (4.0, "medium"),
            (8.0, "clean"), (8.0, "mild"), (16.0, "clean"))  # fmt: skip
"""Validation degradations ``(scale, frgd.degrade preset)``."""
CLEAN_SHARE = 0.3
"""Default share of the faces degraded by the downscale alone."""
SCALE_RANGE = (1.0, 16.0)
"""Default downscale factors (a 128 px face to 128..8 px; 128 px inputs are compared at 64 px)."""


def content_batch(prior: torch.nn.Module, degraded: torch.Tensor, clean: torch.Tensor, size: int) -> (
    tuple[torch.Tensor, ...]
):  # fmt: skip
    """``(y, p, g)`` at the content scale of ``degraded`` ``(B, 3, h, w)``, each ``(B, 3, *hw)``: the input and the
    prior's estimate exactly as the sampler forms them (model size ``size``), and what the input would be as a clean
    downscale, ``clean`` ``(B, 3, h, w)`` (the same kernel and size, no blur, noise or JPEG), brought there the same
    way. A clean input thus has ``g == y`` and a best share of 0 whatever its kernel."""
    from ..content import content_hw, to_content_scale
    from ..prior import apply_prior
    from ..sampling.guidance import downscale_to

    hw = content_hw(*degraded.shape[-2:], size)
    p = apply_prior(prior, degraded, size)
    return downscale_to(degraded, hw), to_content_scale(p, hw), downscale_to(clean, hw)


def degrade_group(faces: np.ndarray, scale: float, clean: np.ndarray, rng: np.random.Generator) -> (
    tuple[torch.Tensor, torch.Tensor]
):  # fmt: skip
    """``faces`` ``(B, S, S, 3)`` uint8 degraded at ``scale`` (``clean[i]``: downscale only) -> the degraded faces and
    their clean downscales (each face's own kernel and size), both ``(B, 3, h, w)``."""
    from ...degrade import DegradationConfig, degrade_image, resize_tensor
    from ...tensor import image_to_tensor

    blind = DegradationConfig(scale_range=(scale, scale), extreme_prob=0.0, resize_back=False, name="prior-share")
    only = DegradationConfig(scale_range=(scale, scale), extreme_prob=0.0, blur_prob=0.0, noise_prob=0.0,
                             jpeg_prob=0.0, resize_back=False, name="prior-share-clean")  # fmt: skip
    degs, cleans = [], []
    for f, c in zip(faces, clean):
        d = degrade_image(f, rng, only if c else blind)
        degs.append(image_to_tensor(d.lq))
        cleans.append(resize_tensor(image_to_tensor(f), tuple(d.params["lr_size"]), d.params["kernel"]).clamp(0, 1))
    return torch.cat(degs), torch.cat(cleans)


@torch.no_grad()
def validate(net: PriorShareNet, prior: torch.nn.Module, root: str | Path, n: int, first: int = VAL_FIRST) -> (
    dict[str, dict[str, float]]
):  # fmt: skip
    """Per validation set: the mean estimated share, the mean best share (``a*`` clipped to [0, 1]), the mean squared
    gap between them, and the RMS error (8-bit levels) at the content scale of the input, the prior and the blended
    target."""
    from ...degrade import fixed_degradation, resize_tensor
    from ...eval.faces import degrade_faces, select_pairs
    from ...tensor import image_to_tensor
    from ..content import blend_target, estimate_share, optimal_share
    from .data import read_image

    pairs = select_pairs(root, first + n)[first:]
    gts = [read_image(Path(root) / t) for t, _, _ in pairs]
    gt = torch.cat([image_to_tensor(g) for g in gts])
    out: dict[str, dict[str, float]] = {}
    for scale, preset in VAL_SETS:
        deg = torch.cat([image_to_tensor(x) for x in degrade_faces(gts, scale, preset, 0, first)])
        clean = resize_tensor(gt, tuple(deg.shape[-2:]), fixed_degradation(scale).kernels[0]).clamp(0, 1)
        y, p, g = content_batch(prior, deg, clean, int(gt.shape[-1]))
        a = estimate_share(net, y, p)
        best = optimal_share(y, p, g).clamp(0, 1)

        def rms(x: torch.Tensor, g: torch.Tensor = g) -> float:
            return round(float(((x - g) ** 2).flatten(1).mean(1).sqrt().mean()) * 255.0, 3)

        out[f"x{scale:g}" + ("" if preset == "clean" else f"-{preset}")] = {
            "share": round(float(a.mean()), 4),
            "best_share": round(float(best.mean()), 4),
            "gap": round(float(((a - best) ** 2).mean()), 5),
            "rms_input": rms(y),
            "rms_prior": rms(p),
            "rms_target": rms(blend_target(y, p, a)),
        }
    return out


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Train in ``args.run`` (a fresh run each time: it takes minutes); returns the state (also ``RUN/state.json``)."""
    from ..content import share_loss
    from ..prior import load_prior
    from .train_prior import load_train_faces

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    run = Path(args.run)
    run.mkdir(parents=True, exist_ok=True)
    if not 0.0 <= args.clean_share <= 1.0:
        raise InputError(f"--clean-share must be in [0, 1], got {args.clean_share}")
    lo, hi = args.scale_range
    if not 1.0 <= lo <= hi:
        raise InputError(f"--scale-range must satisfy 1 <= low <= high, got {lo} {hi}")
    faces = load_train_faces(args.faces, args.limit)
    prior = load_prior(args.prior)
    net = PriorShareNet(args.width, args.depth)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    state: dict[str, Any] = {"step": 0, "images": 0, "loss_curve": []}

    def step() -> float:
        scale = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        idx = rng.integers(len(faces), size=args.batch)
        deg, clean = degrade_group(faces[idx], scale, rng.random(args.batch) < args.clean_share, rng)
        y, p, g = content_batch(prior, deg, clean, int(faces.shape[1]))
        loss = share_loss(torch.sigmoid(net(y, y - p)), y, p, g).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    seconds = timed_loop(opt, step, state, lr=args.lr, steps=args.steps, budget_min=args.time_budget_min,
                         batch=args.batch, log_every=args.log_every)  # fmt: skip
    net.eval()
    state["val"] = validate(net, prior, args.faces, args.val_faces, args.val_first)
    state.update(
        seconds=round(seconds, 1), config=net.config(), batch=args.batch, lr=args.lr,
        clean_share=args.clean_share, scale_range=[lo, hi], train_faces=len(faces), val_first=args.val_first,
        prior=str(args.prior or "installed"),
    )  # fmt: skip
    save_run(run, net, state)
    return state


def export(run: str | Path, out: str | Path, prior_dir: str | Path | None = None) -> Path:
    """Write the run's estimator (float16), its training record and the prior's fingerprint to ``out``."""
    from ..content import save_share_net
    from ..prior import load_prior

    weights, st = load_run(run)
    net = PriorShareNet(**st["config"])
    net.load_state_dict(weights)
    training = training_record(
        st, ("step", "images", "seconds", "batch", "lr", "clean_share", "scale_range", "train_faces", "val_first",
             "val"),
        data="faces128 train split, frgd.degrade blind mixture (research data; weights only are shipped)",
        loss="frgd.diffusion.content.share_loss",
    )  # fmt: skip
    d = save_share_net(net, out, load_prior(prior_dir), {"training": training})
    logger.info("exported %s", d)
    return d


def build_parser() -> argparse.ArgumentParser:
    p, sub, t = command_parser("python -m frgd.diffusion.training.train_prior_share", __doc__,
                               "estimator as a weights folder", budget_min=12.0)  # fmt: skip
    t.add_argument("--prior", default=None, help="prior folder (default: the installed FRGD prior)")
    t.add_argument("--width", type=int, default=24)
    t.add_argument("--depth", type=int, default=3)
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--clean-share", type=float, default=CLEAN_SHARE, help="share of faces only downscaled")
    t.add_argument("--scale-range", type=float, nargs=2, default=list(SCALE_RANGE), metavar=("LOW", "HIGH"))
    t.add_argument("--val-faces", type=int, default=32)
    t.add_argument("--val-first", type=int, default=VAL_FIRST, help=f"first val pair (default {VAL_FIRST})")
    sub.choices["export"].add_argument(
        "--prior", default=None, help="the prior it was trained with (default: the installed one)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, train, lambda a: export(a.run, a.out, a.prior))


if __name__ == "__main__":
    sys.exit(main())
