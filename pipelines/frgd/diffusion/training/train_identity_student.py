"""Train the identity student (:class:`frgd.archs.identity_student_arch.IdentityStudent`) on the CPU (no GPU time).

Distillation: each step takes ``batch`` faces128 training faces, perturbs them (:func:`perturb`: a small affine
jitter, brightness and contrast, and with some probability a Gaussian blur, a down-and-up resize or noise, the kinds
of difference between a diffusion model's clean estimate and a photo) and minimises ``1 - cos(student(face'),
dlib(face))``, the dlib descriptor of the unperturbed face read from the precomputed embeddings file (no dlib run
here). Adam, warm-up and cosine decay by the larger of step and time progress (as :mod:`.train_prior`). Validation on
the faces128 val split (identities never seen in training, :func:`validate`): the cosine to dlib's descriptor on clean,
blurred and x4 down-and-up faces, and how well student and dlib tell the same person from another (ROC AUC over
same-identity pairs and as many different-identity pairs).

Command used for the shipped weights (docs/training_rounds.md, "Identity loss")::

    python -m frgd.diffusion.training.train_identity_student train --faces ../shared/data/faces128 \
        --run runs/identity-student
    python -m frgd.diffusion.training.train_identity_student export --run runs/identity-student \
        --out resources/frgd_resources/weights/frgd-identity-student
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...archs.identity_student_arch import IdentityStudent
from ...cpu_training import command_parser, load_run, run_command, save_run, timed_loop, training_record
from ...errors import InputError

logger = logging.getLogger(__name__)

EMBEDDINGS_FILE = "embeddings_dlib_fp16.npz"
"""The precomputed dlib descriptors inside a faces128 root (``scripts/make_shards.py --embeddings``)."""
VAL_BLUR_SIGMA = 1.5
"""Gaussian sigma (px at 128) of the blurred validation faces."""


def load_split(root: str | Path, split: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """faces128 ``split`` as ``(faces (N, S, S, 3) uint8, dlib descriptors (N, D) float32, identity ids (N,) int)``,
    files sorted (``limit``: the first ``limit``)."""
    from .data import Embeddings
    from .train_prior import load_split_faces

    emb = Embeddings.load(Path(root) / EMBEDDINGS_FILE)
    faces, recs = load_split_faces(root, split, limit)
    missing = [r.file for r in recs if r.file not in emb.index]
    if missing:
        raise InputError(f"{len(missing)} {split} faces have no descriptor in {EMBEDDINGS_FILE}, e.g. {missing[0]}")
    names = sorted({r.identity for r in recs})
    ids = {n: i for i, n in enumerate(names)}
    e = emb.emb[[emb.index[r.file] for r in recs]]
    e = e / np.linalg.norm(e, axis=1, keepdims=True).clip(1e-8)
    logger.info("%d %s faces of %d identities", len(faces), split, len(names))
    return faces, e.astype(np.float32), np.array([ids[r.identity] for r in recs])


def centred(emb: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Descriptors ``(N, D)`` minus ``center`` ``(D,)`` (the training faces' mean), renormalised. dlib's descriptors
    of any two faces are close (cosine about 0.83 for strangers, 0.95 for the same person): the student learns the
    directions that tell people apart, not the shared one."""
    e = emb - center[None]
    return (e / np.linalg.norm(e, axis=1, keepdims=True).clip(1e-8)).astype(np.float32)


def to_tensor(faces: np.ndarray) -> torch.Tensor:
    """``(B, S, S, 3)`` uint8 -> ``(B, 3, S, S)`` float32 [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(faces)).permute(0, 3, 1, 2).float() / 255.0


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-image isotropic Gaussian blur of ``x`` ``(B, C, H, W)`` with ``sigma`` ``(B,)`` px (0: unchanged), by the
    rounds' own per-sample kernels (:func:`.gpu_batch.gaussian_kernels`, :func:`.gpu_batch.blur_full`)."""
    from .gpu_batch import blur_full, gaussian_kernels

    return blur_full(x, gaussian_kernels(sigma, sigma, torch.zeros_like(sigma)))


def perturb(x: torch.Tensor, gen: torch.Generator, p_blur: float = 0.5, p_resize: float = 0.25,
            p_noise: float = 0.2) -> torch.Tensor:  # fmt: skip
    """``x`` ``(B, 3, S, S)`` [0, 1] with each face jittered (rotation up to 4 deg, scale up to 4 %, shift up to 2 px),
    brightness/contrast changed by up to 8 % / 15 %, and with probability ``p_blur`` blurred (sigma 0.3-2.2 px),
    ``p_resize`` resized down by 1.5-4 and back (bilinear), ``p_noise`` given Gaussian noise (sigma up to 0.03)."""
    b, _, s, _ = x.shape

    def u(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(b, generator=gen)

    ang, sc = u(-4, 4) * math.pi / 180, u(0.96, 1.04)
    tx, ty = u(-2, 2) * 2 / s, u(-2, 2) * 2 / s
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * u(0.85, 1.15).view(-1, 1, 1, 1) + mean + u(-0.08, 0.08).view(-1, 1, 1, 1)
    blur = torch.rand(b, generator=gen) < p_blur
    if blur.any():
        x = torch.where(blur.view(-1, 1, 1, 1), gaussian_blur(x, torch.where(blur, u(0.3, 2.2), 0.0)), x)
    if torch.rand(1, generator=gen).item() < p_resize:  # one factor per batch (one interpolate call)
        f = float(u(1.5, 4.0)[0])
        small = F.interpolate(x, size=(round(s / f),) * 2, mode="bilinear", antialias=True, align_corners=False)
        x = F.interpolate(small, size=(s, s), mode="bilinear", align_corners=False)
    noisy = torch.rand(b, generator=gen) < p_noise
    if noisy.any():
        x = x + noisy.view(-1, 1, 1, 1) * u(0.0, 0.03).view(-1, 1, 1, 1) * torch.randn(x.shape, generator=gen)
    return x.clamp(0, 1)


def roc_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Probability that a positive score beats a negative one (ties count half): the ROC AUC, from the Mann-Whitney
    U statistic of ``pos`` against ``neg``."""
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(pos, neg).statistic / (len(pos) * len(neg)))


def verification_pairs(ident: np.ndarray, seed: int = 0, max_pos: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """``(same (P, 2), different (P, 2))`` index pairs: same-identity pairs (at most ``max_pos``) and as many random
    pairs of different identities."""
    rng = np.random.default_rng(seed)
    pos = [(i, j) for i in range(len(ident)) for j in range(i + 1, len(ident)) if ident[i] == ident[j]]
    pos = np.array(pos, np.int64).reshape(-1, 2)
    if len(pos) > max_pos:
        pos = pos[rng.choice(len(pos), max_pos, replace=False)]
    neg = []
    while len(neg) < len(pos):
        i, j = rng.integers(len(ident), size=2)
        if ident[i] != ident[j]:
            neg.append((i, j))
    return pos, np.array(neg, np.int64).reshape(-1, 2)


@torch.no_grad()
def descriptors(net: IdentityStudent, x: torch.Tensor, batch: int = 256) -> np.ndarray:
    """``net`` on ``x`` ``(N, 3, S, S)`` in batches -> ``(N, D)``."""
    return torch.cat([net(x[i : i + batch]) for i in range(0, len(x), batch)]).numpy()


@torch.no_grad()
def validate(net: IdentityStudent, faces: np.ndarray, emb: np.ndarray, ident: np.ndarray) -> dict[str, float]:
    """Cosine to dlib's descriptor ``emb`` ``(N, D)`` (as trained: :func:`centred`) on clean, blurred (by
    :data:`VAL_BLUR_SIGMA`) and x4 down-and-up faces, and verification ROC AUC of the student and of dlib on the same
    pairs (clean faces)."""
    was = net.training
    net.eval()
    x = to_tensor(faces)
    variants = {
        "clean": x,
        "blur": gaussian_blur(x, torch.full((len(x),), VAL_BLUR_SIGMA)),
        "x4": F.interpolate(
            F.interpolate(x, scale_factor=0.25, mode="bilinear", antialias=True), size=x.shape[-2:], mode="bilinear"
        ),  # fmt: skip
    }
    d = {name: descriptors(net, v) for name, v in variants.items()}
    out: dict[str, float] = {f"cos_{name}": round(float((v * emb).sum(1).mean()), 4) for name, v in d.items()}
    pos, neg = verification_pairs(ident)

    def auc(e: np.ndarray) -> float:
        sim = lambda p: (e[p[:, 0]] * e[p[:, 1]]).sum(1)  # noqa: E731
        return round(roc_auc(sim(pos), sim(neg)), 4)

    out.update(auc_student=auc(d["clean"]), auc_dlib=auc(emb), pairs=len(pos), faces=len(faces))
    net.train(was)
    return out


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Train in ``args.run`` (a fresh run each time); returns the state (also ``RUN/state.json``)."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    run = Path(args.run)
    run.mkdir(parents=True, exist_ok=True)
    faces, emb, _ = load_split(args.faces, "train", args.limit)
    vfaces, vemb, vident = load_split(args.faces, "val", args.val_faces)
    net = IdentityStudent(args.widths, args.depth, args.head, int(emb.shape[1]), args.input_size)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    center = emb.mean(0)
    target = torch.from_numpy(centred(emb, center))
    vemb = centred(vemb, center)
    state: dict[str, Any] = {"step": 0, "images": 0, "loss_curve": [], "val_curve": []}

    def step() -> float:
        idx = rng.integers(len(faces), size=args.batch)
        loss = (1 - (net(perturb(to_tensor(faces[idx]), gen)) * target[idx]).sum(1)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    def after_step() -> None:
        if args.val_every and state["step"] % args.val_every == 0:
            n = args.val_every_faces
            v = validate(net, vfaces[:n], vemb[:n], vident[:n])
            state["val_curve"].append([state["step"], v["cos_clean"], v["auc_student"]])
            logger.info("step %d  val %s", state["step"], json.dumps(v))

    seconds = timed_loop(opt, step, state, lr=args.lr, steps=args.steps, budget_min=args.time_budget_min,
                         batch=args.batch, log_every=args.log_every, after_step=after_step)  # fmt: skip
    net.eval()
    state["val"] = validate(net, vfaces, vemb, vident)
    state.update(
        seconds=round(seconds, 1), config=net.config(), batch=args.batch, lr=args.lr,
        weight_decay=args.weight_decay, train_faces=len(faces), params=sum(p.numel() for p in net.parameters()),
    )  # fmt: skip
    save_run(run, net, state)
    return state


def export(run: str | Path, out: str | Path) -> Path:
    """Write the run's student (float16) and its training record to ``out``."""
    from .identity_loss import build_student, save_student

    weights, st = load_run(run)
    net = build_student(st["config"])
    net.load_state_dict(weights)
    training = training_record(
        st, ("step", "images", "seconds", "batch", "lr", "weight_decay", "train_faces", "params", "val", "val_curve"),
        data="faces128 train split, its precomputed dlib descriptors (research data; weights only shipped)",
        loss="1 - cos(student(perturbed face), dlib(face)); frgd.diffusion.training.train_identity_student",
    )  # fmt: skip
    d = save_student(net, out, {"training": training})
    logger.info("exported %s", d)
    return d


def build_parser() -> argparse.ArgumentParser:
    p, _, t = command_parser("python -m frgd.diffusion.training.train_identity_student", __doc__,
                             "student as a weights folder", budget_min=30.0)  # fmt: skip
    t.add_argument("--widths", type=int, nargs="+", default=[32, 48, 80, 128])
    t.add_argument("--depth", type=int, default=2)
    t.add_argument("--head", type=int, default=32)
    t.add_argument("--input-size", type=int, default=64)
    t.add_argument("--batch", type=int, default=64)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--weight-decay", type=float, default=1e-4)
    t.add_argument("--val-faces", type=int, default=None, help="validate on the first N val faces (default all)")
    t.add_argument("--val-every", type=int, default=0, help="validate every N steps too (0: only at the end)")
    t.add_argument("--val-every-faces", type=int, default=400)
    return p


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv, train, lambda a: export(a.run, a.out))


if __name__ == "__main__":
    sys.exit(main())
