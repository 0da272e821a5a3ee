"""Train the damage detector (:class:`frgd.archs.scratch_unet_arch.ScratchUNet`) on the CPU, on synthetic damage.

Each example is a random crop of a clean photo (BSDS400 and T91 scenes, or a faces128 training face upscaled 1-2.5x
like a portrait's face, a share of them wearing glasses that are never marked), aged, damaged and scanned by
:func:`frgd.scratch.synth.damage_photo`; the loss is binary cross-entropy plus soft Dice on its mask. Adam, warm-up
and cosine by the larger of step and time progress (:mod:`frgd.cpu_training`). Validation: fixed synthetic examples
on photos the training never sees (the B100 scenes, i.e. BSDS300's test split, which BSDS400 does not contain, and
faces128 val faces, with glasses as often as in training); the exported threshold is the one with the best F0.5
there (:func:`frgd.scratch.detect.best_threshold`).

Command used for the shipped weights (README, "Damage detection")::

    python -m frgd.scratch.train train --faces ../shared/data/faces128 --photos ../shared/data/sr/train/BSDS400 \
        ../shared/data/sr/train/T91 --val-photos ../shared/data/sr/bench/B100/HR --run runs/damage_a \
        --time-budget-min 58   # stopped after 2,500 steps, with DamageConfig.dark_prob 0.25 then
    python -m frgd.scratch.train train ... --run runs/damage_b --init runs/damage_a --lr 0.001 --seed 1 \
        --time-budget-min 55   # dark_prob 0.1 (today's default), no glasses then
    python -m frgd.scratch.train export --run runs/damage_b --out resources/frgd_resources/weights/frgd-damage
    python -m frgd.scratch.train train ... --run runs/damage_c --init resources/frgd_resources/weights/frgd-damage \
        --lr 0.0005 --seed 2 --time-budget-min 35   # faces wear glasses (glasses_prob 0.3, today's default)
    python -m frgd.scratch.train export --run runs/damage_c --out resources/frgd_resources/weights/frgd-damage
    python -m frgd.scratch.train train ... --run runs/damage_d --init resources/frgd_resources/weights/frgd-damage \
        --lr 0.0005 --seed 3 --time-budget-min 40   # creases and flakes (crease_prob 0.3, flake_prob 0.35)
    python -m frgd.scratch.train validate --run runs/damage_d --faces ../shared/data/faces128 \
        --val-photos ../shared/data/sr/bench/B100/HR   # the threshold again with the tie rule (THRESHOLD_TIE)
    python -m frgd.scratch.train export --run runs/damage_d --out resources/frgd_resources/weights/frgd-damage
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..archs.scratch_unet_arch import ScratchUNet
from ..cpu_training import command_parser, load_run, run_command, save_run, timed_loop, training_record
from ..errors import InputError
from .data import CROP, VAL_PER_SOURCE, make_batch, read_photos, val_set
from .synth import DamageConfig

logger = logging.getLogger(__name__)


def loss_fn(logit: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice over the batch (``(B, 1, H, W)`` each)."""
    bce = F.binary_cross_entropy_with_logits(logit, mask)
    p = torch.sigmoid(logit)
    dice = 1.0 - (2.0 * (p * mask).sum() + 1.0) / (p.sum() + mask.sum() + 1.0)
    return bce + dice


@torch.no_grad()
def predict(net: ScratchUNet, x: torch.Tensor, batch: int = 8) -> np.ndarray:
    """Probabilities ``(N, 1, H, W)`` of ``x``."""
    from .detect import logits

    net.eval()
    out = [torch.sigmoid(logits(net, x[i : i + batch])) for i in range(0, len(x), batch)]
    net.train()
    return torch.cat(out).numpy()


def validate(net: ScratchUNet, val: tuple[torch.Tensor, torch.Tensor]) -> dict[str, Any]:
    """The best F0.5 threshold on ``val`` and the scores there, for the scenes and the faces apart and together."""
    from .detect import best_threshold, mask_scores

    prob, truth = predict(net, val[0]), val[1].numpy()
    thr = best_threshold(prob, truth)
    half = len(prob) // 2
    return {
        "threshold": thr,
        "all": mask_scores(prob, truth, thr),
        "scenes": mask_scores(prob[:half], truth[:half], thr),
        "faces": mask_scores(prob[half:], truth[half:], thr),
    }


def run_detector(run: str | Path) -> tuple[ScratchUNet, dict[str, Any]]:
    """``(detector, state)`` of the run ``run`` (its ``last.pt``)."""
    weights, st = load_run(run)
    net = ScratchUNet(**st["config"])
    net.load_state_dict(weights)
    return net, st


def validation_examples(faces_root: str | Path, val_photos: list[str], cfg: DamageConfig) -> (
    tuple[torch.Tensor, torch.Tensor]
):  # fmt: skip
    """The validation's fixed examples (:func:`.data.val_set`, seed 1234): ``val_photos``' scenes and faces128 val
    faces taken at an even step (about :data:`.data.VAL_PER_SOURCE` of them), damaged as ``cfg`` draws."""
    from ..diffusion.training.train_prior import load_split_faces

    val_faces = load_split_faces(faces_root, "val")[0]
    val_faces = val_faces[:: max(1, len(val_faces) // VAL_PER_SOURCE)]
    return val_set(val_faces, read_photos(val_photos), cfg=cfg)


def revalidate(args: argparse.Namespace) -> dict[str, Any]:
    """The ``validate`` subcommand: the run's final validation made again (its examples, drawn with the run's glasses,
    crease and flake shares, and today's threshold rule, :func:`.detect.best_threshold`) and written into the run,
    so that ``export`` ships its threshold. Returns it."""
    net, st = run_detector(args.run)
    defaults = DamageConfig()
    shares = {k: st.get(k, getattr(defaults, k)) for k in ("glasses_prob", "crease_prob", "flake_prob")}
    st["val"] = validate(net, validation_examples(args.faces, args.val_photos, DamageConfig(**shares)))
    st.update(shares)  # what it was validated with (a run made before a share existed gets today's default)
    save_run(Path(args.run), net, st)
    return st["val"]


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Train in ``args.run`` (from random weights, or from ``args.init``'s with a fresh optimiser and schedule);
    returns the state (also ``RUN/state.json``)."""
    from ..diffusion.training.train_prior import load_split_faces

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    run = Path(args.run)
    run.mkdir(parents=True, exist_ok=True)
    faces = load_split_faces(args.faces, "train", args.limit)[0]
    photos = read_photos(args.photos)
    if not 0.0 <= args.glasses_prob <= 1.0:
        raise InputError(f"--glasses-prob must be in [0, 1], got {args.glasses_prob}")
    cfg = DamageConfig(glasses_prob=args.glasses_prob)
    val = validation_examples(args.faces, args.val_photos, cfg)
    earlier = None
    if args.init and not (Path(args.init) / "last.pt").exists():  # an exported detector (a weights folder)
        from .. import weights as weights_io
        from .detect import load_detector

        net = load_detector(args.init).requires_grad_(True)
        t = weights_io.load_config(args.init).get("training", {})
        earlier = {"weights": str(args.init), "step": t.get("step"), "images": t.get("images"),
                   "earlier": t.get("earlier")}  # fmt: skip
    elif args.init:
        net, st = run_detector(args.init)
        earlier = {"run": str(args.init), "step": st["step"], "images": st["images"], "earlier": st.get("earlier")}
    else:
        net = ScratchUNet(tuple(args.channels))
    net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    state: dict[str, Any] = {"step": 0, "images": 0, "loss_curve": [], "val_curve": [], "config": net.config(),
                             "batch": args.batch, "lr": args.lr, "crop": CROP, "train_faces": len(faces),
                             "train_photos": len(photos), "dark_prob": cfg.dark_prob, "glasses_prob": cfg.glasses_prob,
                             "crease_prob": cfg.crease_prob, "flake_prob": cfg.flake_prob,
                             "earlier": earlier}  # fmt: skip
    t0 = time.perf_counter()

    def step() -> float:
        x, m = make_batch(faces, photos, args.batch, CROP, rng, cfg)
        loss = loss_fn(net(x.contiguous(memory_format=torch.channels_last)), m)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    def after() -> None:
        if state["step"] % args.val_every == 0:
            v = validate(net, val)
            state["val_curve"].append([state["step"], round(time.perf_counter() - t0, 1), v["threshold"],
                                       v["all"]["f0.5"], v["all"]["f1"]])  # fmt: skip
            logger.info("val step %d: %s", state["step"], v)
            torch.save({"model": net.state_dict(), "state": state}, run / "last.pt")

    timed_loop(opt, step, state, lr=args.lr, steps=args.steps, budget_min=args.time_budget_min, batch=args.batch,
               log_every=args.log_every, after_step=after)  # fmt: skip
    state["seconds"] = round(time.perf_counter() - t0, 1)
    state["val"] = validate(net, val)
    save_run(run, net, state)
    return state


def export(run: str | Path, out: str | Path) -> Path:
    """Write the run's detector (float16) with its validated threshold and training record to ``out``."""
    from .detect import save_detector

    net, st = run_detector(run)
    training = training_record(
        st, ("step", "images", "seconds", "batch", "lr", "crop", "train_faces", "train_photos", "dark_prob",
             "glasses_prob", "crease_prob", "flake_prob", "earlier", "val"),
        data="synthetic damage (frgd.scratch.synth) on BSDS400 + T91 scenes and faces128 train faces; validated on "
             "B100 scenes and faces128 val faces (research data; weights only are shipped)",
        loss="binary cross-entropy + soft Dice",
    )  # fmt: skip
    d = save_detector(net, out, st["val"]["threshold"], {"training": training})
    logger.info("exported %s", d)
    return d


def build_parser() -> argparse.ArgumentParser:
    p, sub, t = command_parser("python -m frgd.scratch.train", __doc__, "detector as a weights folder", budget_min=50.0)
    t.add_argument("--photos", nargs="+", required=True, help="folders of clean scenes")
    t.add_argument("--val-photos", nargs="+", required=True, help="folders of held-out scenes")
    t.add_argument("--channels", type=int, nargs="+", default=[16, 32, 48, 64])
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument(
        "--init",
        default=None,
        metavar="RUN",
        help="start from RUN's weights, or an exported detector folder's (a fresh optimiser)",
    )
    t.add_argument(
        "--glasses-prob",
        type=float,
        default=DamageConfig().glasses_prob,
        help="share of face examples wearing glasses, never marked (default %(default)s)",
    )
    t.add_argument("--val-every", type=int, default=500)
    v = sub.add_parser("validate", help="make RUN's final validation again (today's threshold rule) for export")
    v.add_argument("--run", required=True)
    v.add_argument("--faces", required=True, help="faces128 root (labels.csv, train/, val/)")
    v.add_argument("--val-photos", nargs="+", required=True, help="folders of held-out scenes")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, train,
                       lambda a: revalidate(a) if a.cmd == "validate" else export(a.run, a.out))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
