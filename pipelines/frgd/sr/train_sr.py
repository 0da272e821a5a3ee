"""Train FRGD-SR (``frgd.archs.edsr_arch.EDSRLite``) with L1 loss on the CPU or a GPU.

Data: HR images from folders (default ``../shared/data/sr/train/T91`` and ``BSDS400``), ``modcrop``-ed to the scale;
LR made once per image with our MATLAB-exact :func:`frgd.metrics.imresize` (uint8, like the benchmark LR files); random
aligned LR/HR patches with flips and 90-degree rotations. Adam, cosine learning-rate decay over the run (its progress
is the larger of ``step / steps`` and ``elapsed / time_budget``, so a time-capped run still anneals), periodic
checkpoint (resumable) and Set5 validation (Y PSNR, shave = scale) when the set is available.

Commands used for the shipped weights (see ``docs/sr_results.md``)::

    nice -n 10 python -m frgd.sr.train_sr train --scale 4 --run runs/frgd-sr-x4 --steps 20000 --time-budget-min 40
    nice -n 10 python -m frgd.sr.train_sr train --scale 2 --run runs/frgd-sr-x2 --init runs/frgd-sr-x4/last.pt \
        --lr 2e-4 --steps 8000 --time-budget-min 15
    nice -n 10 python -m frgd.sr.train_sr export --run runs/frgd-sr-x4 --out resources/frgd_resources/weights/frgd-sr-x4

``train`` resumes from ``RUN/last.pt`` when it exists. SIGINT/SIGTERM save a checkpoint and stop.
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..archs.edsr_arch import EDSRLite
from ..cpu_training import lr_at
from ..metrics.imresize import imresize, modcrop
from ..metrics.psnr_ssim import psnr, to_y

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[3]
DEFAULT_TRAIN = [REPO.parent / "shared/data/sr/train/T91", REPO.parent / "shared/data/sr/train/BSDS400"]
DEFAULT_VAL = REPO.parent / "shared/data/sr/bench/Set5"
IMG_EXT = {".png", ".jpg", ".jpeg", ".bmp"}


def load_rgb(path: Path) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB (grey images are repeated to 3 channels)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@dataclass
class PairSet:
    """In-memory HR/LR uint8 pairs for one scale."""

    hr: list[np.ndarray]
    lr: list[np.ndarray]
    scale: int


def build_pairs(folders: list[Path], scale: int, min_lr: int) -> PairSet:
    """Load every image of ``folders``, modcrop and make its LR with MATLAB bicubic (uint8)."""
    files = sorted(p for f in folders for p in Path(f).iterdir() if p.suffix.lower() in IMG_EXT)
    if not files:
        raise SystemExit(f"no training images in {[str(f) for f in folders]}")
    hr, lr = [], []
    t0 = time.time()
    for p in files:
        img = modcrop(load_rgb(p), scale)
        if min(img.shape[:2]) // scale < min_lr:
            continue
        hr.append(img)
        lr.append(imresize(img, 1 / scale))
    logger.info("prepared %d HR/LR pairs (x%d) from %d files in %.1fs", len(hr), scale, len(files), time.time() - t0)
    return PairSet(hr, lr, scale)


def sample_batch(
    data: PairSet, batch: int, lr_patch: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random aligned patches: LR ``(B, 3, p, p)``, HR ``(B, 3, s*p, s*p)``, float32 [0, 1], random flips/rot90."""
    s = data.scale
    lrs, hrs = [], []
    for _ in range(batch):
        i = int(rng.integers(len(data.lr)))
        lr_img, hr_img = data.lr[i], data.hr[i]
        y = int(rng.integers(lr_img.shape[0] - lr_patch + 1))
        x = int(rng.integers(lr_img.shape[1] - lr_patch + 1))
        a = lr_img[y : y + lr_patch, x : x + lr_patch]
        b = hr_img[y * s : (y + lr_patch) * s, x * s : (x + lr_patch) * s]
        if rng.random() < 0.5:
            a, b = a[:, ::-1], b[:, ::-1]
        if rng.random() < 0.5:
            a, b = a[::-1], b[::-1]
        k = int(rng.integers(4))
        a, b = np.rot90(a, k), np.rot90(b, k)
        lrs.append(np.ascontiguousarray(a))
        hrs.append(np.ascontiguousarray(b))
    lr_t = torch.from_numpy(np.stack(lrs)).permute(0, 3, 1, 2).float().div_(255.0)
    hr_t = torch.from_numpy(np.stack(hrs)).permute(0, 3, 1, 2).float().div_(255.0)
    return lr_t, hr_t


def validate(model: EDSRLite, val_dir: Path, scale: int, device: torch.device) -> float | None:
    """Mean Y PSNR (shave = scale) on ``val_dir`` (``HR/`` + ``LR_bicubic/X{s}/``, or LR made from HR)."""
    hr_dir = val_dir / "HR"
    if not hr_dir.is_dir():
        return None
    from PIL import Image

    vals = []
    model.eval()
    with torch.no_grad():
        for p in sorted(hr_dir.iterdir()):
            if p.suffix.lower() not in IMG_EXT:
                continue
            with Image.open(p) as im:
                hr = modcrop(np.asarray(im), scale)
            lr_path = val_dir / "LR_bicubic" / f"X{scale}" / f"{p.stem}x{scale}.png"
            if lr_path.exists():
                with Image.open(lr_path) as im:
                    lr = np.asarray(im)
            else:
                lr = imresize(hr, 1 / scale)
            gray = lr.ndim == 2
            lr3 = np.repeat(lr[:, :, None], 3, axis=2) if gray else lr
            x = torch.from_numpy(np.ascontiguousarray(lr3)).permute(2, 0, 1)[None].float().div(255.0).to(device)
            sr = model(x).clamp(0, 1)[0].permute(1, 2, 0).cpu().numpy()
            sr = np.round(sr * 255.0).astype(np.uint8)
            # a single-channel HR is the Y reference; the RGB output is compared through its Y
            vals.append(psnr(_shave(to_y(sr), scale), _shave(to_y(hr), scale)))
    model.train()
    return float(np.mean(vals)) if vals else None


def _shave(a: np.ndarray, s: int) -> np.ndarray:
    return a[s:-s, s:-s] if s > 0 else a


def train(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    device = torch.device(args.device)
    run = Path(args.run)
    run.mkdir(parents=True, exist_ok=True)
    fh = logging.FileHandler(run / "train.log")
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    fh.setLevel(logging.INFO)
    logger.addHandler(fh)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    old_signals = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _train(args, run, device, rng)
    finally:
        logger.removeHandler(fh)
        fh.close()
        logger.setLevel(old_level)
        if threading.current_thread() is threading.main_thread():
            for sig, handler in old_signals.items():
                signal.signal(sig, handler)


def _train(args: argparse.Namespace, run: Path, device: torch.device, rng: np.random.Generator) -> int:

    model = EDSRLite(args.scale, args.num_feat, args.num_block, args.res_scale).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999))
    step, elapsed_prev = 0, 0.0
    last = run / "last.pt"
    if last.exists():
        ck = torch.load(last, map_location=device, weights_only=True)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        step, elapsed_prev = int(ck["step"]), float(ck["elapsed"])
        rng = np.random.default_rng(args.seed + step)
        logger.info("resumed %s at step %d (%.1f min trained)", last, step, elapsed_prev / 60)
    elif args.init:
        ck = torch.load(args.init, map_location=device, weights_only=True)
        src = ck.get("model", ck)
        own = model.state_dict()
        taken = {k: v for k, v in src.items() if k in own and own[k].shape == v.shape}
        model.load_state_dict(taken, strict=False)
        logger.info(
            "initialised %d/%d tensors from %s (skipped: %s)",
            len(taken),
            len(own),
            args.init,
            sorted(set(own) - set(taken)),
        )
    logger.info(
        "model %s, %d parameters, args %s",
        model.config(),
        sum(p.numel() for p in model.parameters()),
        {k: v for k, v in vars(args).items() if k != "func"},
    )

    folders = [Path(f) for f in (args.train_dir or DEFAULT_TRAIN)]
    data = build_pairs(folders, args.scale, args.lr_patch)

    stop = {"flag": False}

    def _stop(signum, _frame):
        logger.info("signal %d: saving and stopping", signum)
        stop["flag"] = True

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)

    def save(tag: str = "last") -> None:
        ck = {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "step": step,
            "elapsed": elapsed_prev + (time.time() - t_start),
            "config": {k: v for k, v in model.config().items()},
        }
        tmp = run / f"{tag}.pt.tmp"
        torch.save(ck, tmp)
        tmp.replace(run / f"{tag}.pt")

    budget = args.time_budget_min * 60 if args.time_budget_min else math.inf
    t_start = time.time()
    t_log, n_log, loss_acc = time.time(), 0, 0.0
    model.train()
    while step < args.steps and not stop["flag"]:
        elapsed = elapsed_prev + time.time() - t_start
        if elapsed >= budget:
            logger.info("time budget of %.1f min reached", args.time_budget_min)
            break
        progress = max(step / args.steps, elapsed / budget if budget < math.inf else 0.0)
        lr = lr_at(progress, args.lr, args.min_lr, args.warmup, floor=0.05)
        for g in opt.param_groups:
            g["lr"] = lr
        lr_t, hr_t = sample_batch(data, args.batch, args.lr_patch, rng)
        lr_t, hr_t = lr_t.to(device), hr_t.to(device)
        loss = F.l1_loss(model(lr_t), hr_t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        n_log += args.batch
        loss_acc += loss.detach().item()
        if step % args.log_every == 0:
            dt = time.time() - t_log
            logger.info(
                "step %d loss %.5f lr %.2e %.1f patches/s elapsed %.1f min",
                step,
                loss_acc / args.log_every,
                lr,
                n_log / dt,
                (elapsed_prev + time.time() - t_start) / 60,
            )
            t_log, n_log, loss_acc = time.time(), 0, 0.0
        if step % args.ckpt_every == 0:
            save()
        if args.val_every and step % args.val_every == 0:
            v = validate(model, Path(args.val_dir), args.scale, device)
            if v is not None:
                logger.info("step %d val %s x%d PSNR-Y %.3f dB", step, Path(args.val_dir).name, args.scale, v)
    save()
    v = validate(model, Path(args.val_dir), args.scale, device)
    total = elapsed_prev + time.time() - t_start
    logger.info("done: step %d, %.1f min, final val PSNR-Y %s", step, total / 60, f"{v:.3f}" if v else "n/a")
    return 0


def export(args: argparse.Namespace) -> int:
    """Write ``config.json`` + ``model.safetensors`` of ``RUN/last.pt`` via ``frgd.weights.save_pretrained``."""
    from .ours import save_frgd_sr

    ck = torch.load(Path(args.run) / "last.pt", map_location="cpu", weights_only=True)
    model = EDSRLite(**ck["config"])
    model.load_state_dict(ck["model"])
    extra = {"train_steps": int(ck["step"]), "train_minutes": round(float(ck["elapsed"]) / 60, 1)}
    save_frgd_sr(model, Path(args.out), extra=extra)
    logger.info("exported %s (step %d) to %s", args.run, ck["step"], args.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m frgd.sr.train_sr", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train (or resume) one scale")
    t.add_argument("--scale", type=int, choices=(2, 3, 4), required=True)
    t.add_argument("--run", required=True, help="run folder (checkpoints, train.log)")
    t.add_argument("--train-dir", action="append", help="HR image folder (repeatable; default T91 + BSDS400)")
    t.add_argument("--val-dir", default=str(DEFAULT_VAL), help="validation set with HR/ (+ LR_bicubic/)")
    t.add_argument("--init", help="checkpoint to initialise from (tensors of matching shape, e.g. x4 -> x2)")
    t.add_argument("--num-feat", type=int, default=48)
    t.add_argument("--num-block", type=int, default=8)
    t.add_argument("--res-scale", type=float, default=1.0)
    t.add_argument("--steps", type=int, default=20000)
    t.add_argument("--time-budget-min", type=float, default=0.0, help="stop after this many minutes (0: none)")
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--lr-patch", type=int, default=24, help="LR patch side (HR patch = scale * this)")
    t.add_argument("--lr", type=float, default=5e-4)
    t.add_argument("--min-lr", type=float, default=1e-6)
    t.add_argument("--warmup", type=float, default=0.02, help="fraction of the run with linear warm-up")
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--device", default="cpu")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--log-every", type=int, default=50)
    t.add_argument("--ckpt-every", type=int, default=250)
    t.add_argument("--val-every", type=int, default=1000)
    t.set_defaults(func=train)
    e = sub.add_parser("export", help="export RUN/last.pt to a weights folder")
    e.add_argument("--run", required=True)
    e.add_argument("--out", required=True)
    e.set_defaults(func=export)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
