"""Train the FRGD prior (:class:`frgd.archs.face_prior_arch.FacePriorNet`) with L1 loss, on the CPU (no GPU time).

Data: the faces128 training split, all faces decoded once into memory as uint8; each batch degraded by
:class:`frgd.diffusion.training.gpu_batch.GPUDegrader` (the FRGD rounds' batched degradation, on whatever device
trains: the same families and ranges as :mod:`frgd.degrade`), a share ``clean_share`` of each batch by the downscale
alone (no blur, noise or JPEG: the commonest input, which the blind mixture alone rarely shows: with its
probabilities 0.3 x 0.4 x 0.3 = 4 % of the faces), horizontal flips. Adam, a linear warm-up and cosine decay
whose progress is the larger of ``step / steps`` and ``elapsed / time_budget`` (a time-capped run still anneals),
periodic resumable checkpoints (``RUN/last.pt``; SIGINT/SIGTERM save one and stop) and a validation on faces128 val
pairs that neither ``frgd eval faces`` (pairs 0-23) nor the slider tuning (24-35) use: pairs ``VAL_FIRST`` onwards,
degraded by :func:`frgd.eval.faces.degrade_faces` at x8 and x4 (RGB PSNR against bicubic).

Command used for the shipped weights (README, "Measured results")::

    nice -n 10 python -m frgd.diffusion.training.train_prior train --faces ../shared/data/faces128 \
        --run runs/frgd-prior --time-budget-min 50
    python -m frgd.diffusion.training.train_prior export --run runs/frgd-prior \
        --out resources/frgd_resources/weights/frgd-prior-128

``train`` resumes ``RUN/last.pt`` (an interrupted run); a later session continues the shipped weights in a new run
with ``--init resources/frgd_resources/weights/frgd-prior-128`` (fresh optimizer, warm-up, its own budget; the export
records the images and minutes in total).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...archs.face_prior_arch import FacePriorNet
from ...cpu_training import add_export_parser, add_loop_options, lr_at, run_command
from ...errors import InputError

logger = logging.getLogger(__name__)

VAL_FIRST = 40
"""First faces128 val pair of the prior's validation (after the evaluation's 0-23 and the tuning's 24-35)."""
VAL_SETS = ((8.0, "clean"), (4.0, "clean"), (8.0, "mild"))
"""Validation degradations ``(scale, frgd.degrade preset)``."""
CLEAN_SHARE = 0.25
"""Default share of each batch degraded by the downscale alone."""


@dataclass
class PriorVal:
    """Validation inputs: ground truths ``(N, 3, S, S)`` and, per name (``x8``, ``x8-mild``, ...), the degraded faces
    at their own size."""

    gt: torch.Tensor
    degraded: dict[str, list[torch.Tensor]]


def load_split_faces(root: str | Path, split: str = "train", limit: int | None = None, workers: int = 4) -> (
    tuple[np.ndarray, list]
):  # fmt: skip
    """The faces128 ``split`` as ``(N, S, S, 3)`` uint8 and its label rows (:class:`.data.FaceRecord`), files sorted
    (``limit``: the first ``limit``)."""
    from .data import read_image, read_labels

    recs = sorted((r for r in read_labels(root) if r.split == split), key=lambda r: r.file)
    if limit is not None:
        recs = recs[: int(limit)]
    if not recs:
        raise InputError(f"no {'training' if split == 'train' else split} faces in {root}/labels.csv")
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max(1, workers)) as ex:
        faces = np.stack(list(ex.map(lambda r: read_image(Path(root) / r.file), recs)))
    logger.info("decoded %d %s faces in %.1f s", len(faces), split, time.perf_counter() - t0)
    return faces, recs


def load_train_faces(root: str | Path, limit: int | None = None, workers: int = 4) -> np.ndarray:
    """The faces128 training split as ``(N, S, S, 3)`` uint8 (``limit``: the first ``limit`` files, sorted)."""
    return load_split_faces(root, "train", limit, workers)[0]


def load_val(
    root: str | Path, n: int, first: int = VAL_FIRST, sets: tuple[tuple[float, str], ...] = VAL_SETS
) -> PriorVal:
    """``n`` val pairs from ``first`` (targets only), degraded like ``frgd eval faces`` for each ``(scale, preset)``."""
    from ...eval.faces import degrade_faces, select_pairs
    from ...tensor import image_to_tensor
    from .data import read_image

    pairs = select_pairs(root, first + n)[first:]
    gts = [read_image(Path(root) / t) for t, _, _ in pairs]
    if not gts:
        raise InputError(f"no validation pairs from pair {first} in {root}")
    deg = {
        f"x{s:g}" + ("" if p == "clean" else f"-{p}"): [image_to_tensor(x) for x in degrade_faces(gts, s, p, 0, first)]
        for s, p in sets
    }
    return PriorVal(gt=torch.cat([image_to_tensor(g) for g in gts]), degraded=deg)


def _psnr_rgb(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean RGB PSNR of 8-bit rounded ``a`` against ``b`` ``(N, 3, H, W)`` in [0, 1] (as ``frgd eval faces``)."""
    from ...metrics import psnr
    from ...tensor import tensor_to_image

    return float(np.mean([psnr(tensor_to_image(x), tensor_to_image(y)) for x, y in zip(a, b)]))


@torch.no_grad()
def validate(model: FacePriorNet, val: PriorVal, size: int) -> dict[str, dict[str, float]]:
    """``{"x8": {"bicubic": dB, "prior": dB}, ...}`` on the validation faces."""
    out: dict[str, dict[str, float]] = {}
    was_training = model.training
    model.eval()
    for name, degs in val.degraded.items():
        bic = torch.cat([F.interpolate(d, size=(size, size), mode="bicubic", align_corners=False) for d in degs])
        bic = bic.clamp(0, 1)
        est = torch.cat([model(bic[i : i + 16]) for i in range(0, len(bic), 16)])
        out[name] = {"bicubic": _psnr_rgb(bic, val.gt), "prior": _psnr_rgb(est, val.gt)}
    model.train(was_training)
    return out


class _Stop:
    """Set by SIGINT/SIGTERM: the loop saves a checkpoint and stops at the next step."""

    def __init__(self) -> None:
        self.flag = False

    def __call__(self, signum, frame) -> None:  # noqa: ARG002 - signal handler signature
        logger.info("signal %d: saving and stopping", signum)
        self.flag = True


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Train (or resume) in ``args.run``; returns the final state (also ``RUN/state.json``)."""
    from .gpu_batch import GPUDegradation, GPUDegrader

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    run = Path(args.run)
    run.mkdir(parents=True, exist_ok=True)
    fh = logging.FileHandler(run / "train.log")
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(fh)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    stop = _Stop()
    in_main = threading.current_thread() is threading.main_thread()
    old_signals = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)} if in_main else {}
    for sig in old_signals:
        signal.signal(sig, stop)
    try:
        device = torch.device(args.device)
        faces = torch.from_numpy(load_train_faces(args.faces, args.limit).transpose(0, 3, 1, 2).copy())
        size = int(faces.shape[-1])
        val = load_val(args.faces, args.val_faces, args.val_first)
        model = FacePriorNet(tuple(args.channels), args.blocks, args.mid_blocks).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.99))
        degrader = GPUDegrader(GPUDegradation(), device)
        clean = GPUDegrader(GPUDegradation(blur_prob=0.0, noise_prob=0.0, jpeg_prob=0.0), device)
        if not 0.0 <= args.clean_share <= 1.0:
            raise InputError(f"--clean-share must be in [0, 1], got {args.clean_share}")
        n_clean = int(round(args.batch * args.clean_share))
        gen = torch.Generator(device=device)
        state: dict[str, Any] = {"step": 0, "images": 0, "elapsed_s": 0.0, "loss_curve": [], "val": []}
        last = run / "last.pt"
        if last.exists():
            ck = torch.load(last, map_location=device, weights_only=True)
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            state = ck["state"]
            logger.info("resumed %s at step %d (%.1f min trained)", last, state["step"], state["elapsed_s"] / 60)
        elif args.init:  # continue shipped weights: their architecture, a fresh optimizer and schedule
            from ... import weights
            from ..prior import load_prior

            init = load_prior(args.init, device)
            model = FacePriorNet(**init.config()).to(device)
            model.load_state_dict(init.state_dict())
            opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.99))
            before = weights.load_config(args.init).get("training", {})
            state["init"] = {"path": str(args.init), "images": before.get("images_total", before.get("images", 0)),
                             "minutes": before.get("minutes_total", before.get("minutes", 0))}  # fmt: skip
            logger.info("initialised from %s (%s images before)", args.init, state["init"]["images"])
        state["extreme_prob"] = degrader.cfg.extreme_prob  # the share of inputs downscaled by 24-64 (frgd.degrade)
        gen.manual_seed(int(args.seed) * 1_000_003 + int(state["step"]))
        n_params = sum(p.numel() for p in model.parameters())
        logger.info("FacePriorNet %s: %d parameters; %d faces; budget %.1f min", model.config(), n_params,
                    len(faces), args.time_budget_min)  # fmt: skip
        budget = float(args.time_budget_min) * 60.0
        t_start = time.perf_counter() - state["elapsed_s"]
        t_ckpt = time.perf_counter()
        run_loss, run_n = 0.0, 0

        def save() -> None:
            state["elapsed_s"] = time.perf_counter() - t_start
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "state": state}, last)

        model.train()
        while True:
            elapsed = time.perf_counter() - t_start
            progress = max(state["step"] / max(1, args.steps), elapsed / budget if budget > 0 else 0.0)
            if progress >= 1.0 or stop.flag:
                break
            lr = lr_at(progress, args.lr, args.lr * args.min_lr_ratio, args.warmup)
            for g in opt.param_groups:
                g["lr"] = lr
            idx = torch.randint(len(faces), (args.batch,), generator=gen, device=device)
            x = faces[idx].to(device).float().div_(255.0)
            flip = torch.rand(args.batch, generator=gen, device=device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            with torch.no_grad():
                parts = [(clean, x[:n_clean]), (degrader, x[n_clean:])]
                deg = torch.cat([d(part, gen)[0] for d, part in parts if len(part)])
            loss = (model(deg) - x).abs().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            state["step"] += 1
            state["images"] += args.batch
            run_loss += float(loss.detach())
            run_n += 1
            if state["step"] % args.log_every == 0:
                el = time.perf_counter() - t_start
                state["loss_curve"].append([state["step"], round(el, 1), round(run_loss / run_n, 5), lr])
                logger.info("step %d  %.1f min  loss %.5f  lr %.2e  %.1f img/s", state["step"], el / 60,
                            run_loss / run_n, lr, state["images"] / max(el, 1e-6))  # fmt: skip
                run_loss, run_n = 0.0, 0
            if state["step"] % args.val_every == 0:
                v = validate(model, val, size)
                state["val"].append({"step": state["step"], **v})
                logger.info("val step %d: %s", state["step"], json.dumps(v))
            if time.perf_counter() - t_ckpt > args.checkpoint_min * 60:
                save()
                t_ckpt = time.perf_counter()
        v = validate(model, val, size)
        state["val"].append({"step": state["step"], **v})
        state["final_val"] = v
        state["params"] = n_params
        state["config"] = model.config()
        state["train_faces"] = len(faces)
        state["sample_size"] = size
        state["clean_share"] = args.clean_share
        state["val_first"] = args.val_first
        state["batch"] = args.batch
        state["lr"] = args.lr
        state["threads"] = args.threads
        state["device"] = str(device)
        save()
        (run / "state.json").write_text(json.dumps({k: v for k, v in state.items() if k != "loss_curve"}, indent=1))
        logger.info("done: step %d, %d images, %.1f min; val %s", state["step"], state["images"],
                    state["elapsed_s"] / 60, json.dumps(v))  # fmt: skip
        return state
    finally:
        logger.removeHandler(fh)
        fh.close()
        logger.setLevel(old_level)
        for sig, handler in old_signals.items():
            signal.signal(sig, handler)


def export(run: str | Path, out: str | Path) -> Path:
    """Write the run's weights (float16) and ``config.json`` with its training record to ``out``."""
    from ..prior import save_prior

    ck = torch.load(Path(run) / "last.pt", map_location="cpu", weights_only=True)
    st = ck["state"]
    model = FacePriorNet(**st.get("config", {}))
    model.load_state_dict(ck["model"])
    extra = {
        "training": {
            "data": "faces128 train split (research data; weights only are shipped)",
            "loss": "L1",
            "degradation": "frgd.diffusion.training.gpu_batch.GPUDegradation defaults; a share of each batch "
            "downscaled only",
            "clean_share": st.get("clean_share"),
            "extreme_prob": st.get("extreme_prob"),
            "steps": st["step"],
            "images": st["images"],
            "minutes": round(st["elapsed_s"] / 60, 1),
            "init": st.get("init"),
            "images_total": st["images"] + (st.get("init") or {}).get("images", 0),
            "minutes_total": round(st["elapsed_s"] / 60 + (st.get("init") or {}).get("minutes", 0), 1),
            "batch": st.get("batch"),
            "lr": st.get("lr"),
            "threads": st.get("threads"),
            "device": st.get("device"),
            "val_pairs_from": st.get("val_first", VAL_FIRST),
            "val": st.get("final_val"),
        }
    }
    d = save_prior(model, out, st.get("sample_size", 128), extra)
    logger.info("exported %s", d)
    return d


def build_parser() -> argparse.ArgumentParser:
    prog = "python -m frgd.diffusion.training.train_prior"
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train or resume in RUN")
    t.add_argument("--faces", required=True, help="faces128 root (labels.csv, train/, val/)")
    t.add_argument("--run", required=True, help="run folder (last.pt, train.log, state.json)")
    t.add_argument(
        "--init", metavar="DIR", help="start from a prior folder (e.g. the shipped one; its architecture, a fresh "
        "optimizer and schedule) instead of scratch; ignored when RUN has a checkpoint",
    )  # fmt: skip
    t.add_argument("--channels", type=int, nargs="+", default=[24, 48, 64, 96])
    t.add_argument("--blocks", type=int, default=1)
    t.add_argument("--mid-blocks", type=int, default=2)
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--clean-share", type=float, default=CLEAN_SHARE, help="share of a batch only downscaled")
    t.add_argument("--min-lr-ratio", type=float, default=0.02)
    t.add_argument("--warmup", type=float, default=0.02, help="fraction of the run")
    t.add_argument("--val-faces", type=int, default=32)
    t.add_argument("--val-first", type=int, default=VAL_FIRST, help=f"first val pair (default {VAL_FIRST})")
    t.add_argument("--val-every", type=int, default=500)
    t.add_argument("--checkpoint-min", type=float, default=5.0)
    t.add_argument("--device", default="cpu")
    add_loop_options(t, budget_min=50.0)
    add_export_parser(sub, "weights as a prior folder")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, train, lambda a: export(a.run, a.out))


if __name__ == "__main__":
    sys.exit(main())
