"""One FRGD-128 training round: turn one short GPU window into better shipped weights, in one command.

``frgd round run --pack PACK --out OUT --deadline-s 540`` (what ``scripts/gpu_round.sh`` calls on the lent machine):

1. **Set up** (seconds): decode the data pack (:mod:`.pack`) and put every training face on the device as uint8
   (:class:`.gpu_batch.FaceTensors`); build the model of the preset; start from the last committed EMA weights
   (``resources/frgd_resources/weights/frgd-128``) when their architecture matches, else from scratch (recorded);
   a fresh AdamW and a short warm-up; count the model's FLOPs per image (forward + backward) and, on CUDA, the
   measured bf16 matmul ceiling for the MFU figure.
2. **Measure** (first minute, the steps train too): img/s at each ``batch_sizes`` entry in eager mode, then with
   ``torch.compile`` at the best one (``compile: auto`` keeps it only when it is faster); recorded. On the H100 the
   compile takes 88-100 s and then more than doubles the img/s (rounds 1 and 3). ``compile_in_background`` (off by
   default) compiles a copy of the model in a background thread on one captured batch while eager steps go on
   training, then the trainer compiles its own model from inductor's cache; on the H100 (round 3, first call) the
   eager steps fell from 428 to 23-115 img/s meanwhile and the process ran out of GPU memory (71.5 GiB allocated), so
   the synchronous compile is the default.
3. **Train until the deadline**: batches are made on the device (:class:`.gpu_batch.GPUBatchMaker`), bf16 autocast,
   min-SNR-weighted v-prediction loss with the fusion weights of :mod:`.fusion` (one step = the same maths as
   ``frgd train``: :func:`.train.make_training_inputs`; with ``identity_loss.weight`` > 0 plus the identity loss of
   :mod:`.identity_loss`, off by default), the learning rate a function of *wall-clock time*
   (:func:`lr_at`: linear warm-up, cosine to ``lr_min_ratio`` exactly at the training deadline, so a time stop always
   ends with a low LR), an EMA of the weights, the data share of each step and the loss curve logged; the fp16 EMA
   weights are exported every ``export_every_s`` so a killed command still returns usable weights.
4. **Export and check** (last ``reserve_s``): the EMA weights as an fp16 model folder (< 16 MiB), a quick validation
   on the pack's fixed validation pairs at x8 and x4 (PSNR/SSIM of bicubic and of FRGD at the content end, without and
   with the reference embedding), a sample grid, and ``round.json`` (round number, parent weights, images seen this
   round and in total, steps, img/s, MFU, data share, loss curve, validation).

**Detached** (``scripts/gpu_round.sh`` with ``ROUND_DETACH`` / ``ROUND_ATTACH``): one round outlives the command that
started it; the commands talk to it through files in ``OUT``: :data:`SNAPSHOT_REQUEST` (the weights of the moment in
``OUT/snapshot/``) and :data:`DEADLINE_FILE` (an earlier deadline: the LR's cosine then ends there), both served
between training steps.

Everything it writes goes to ``OUT`` (at most 8 files: the model folder's 4, ``round.json``, ``round.log`` from the
shell script, the grid, and ``compile_cache.bin``). ``frgd round land OUT`` installs the weights as the default
``frgd-128`` model. A command that ended before its check (``round.json`` not ``"complete"``) is validated here
first (:func:`validate_round`, ``frgd round validate``); ``land`` refuses it until then.

**The compile cache** (``compile_cache.bin``, :mod:`.compile_cache`): a round that trained compiled saves, after its
validation (in the reserve, not in training time), torch's portable cache artifacts, LZMA-compressed, with the Triton
kernels bundled without their compilation stages, when they are at most ``compile_cache_max_mib`` and
``compile_cache_save_s`` remain before the deadline (round 6, unslimmed: 127 MiB raw, 5.47 MiB compressed in about
46 s, so not kept; round 8, slimmed: 39 MB raw, 2.21 MiB in 20 s); ``frgd round land`` keeps them in the tree
(``frgd.cli.cmd_round.KEPT_CACHE``, committed: each session starts from a new checkout), and the next session's
first call (``--compile-cache``, passed by ``scripts/gpu_round.sh``) loads them before compiling. A
cache made for another torch, driver or GPU is simply not hit; loaded code is trusted only after the compiled and
the eager model agree on a batch of real inputs, and code that fails or disagrees is replaced by a compile from
scratch (``bench.compile_cache.cold_retry``), so a bad cache costs at most that check.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import InputError
from ...io import file_sha256
from ..model import WEIGHTS_FILE
from . import recipe as R
from .compile_cache import COMPILE_CACHE_FILE, cold_compile, load_compile_cache, save_compile_cache, slim_kernel_bundles
from .fusion import FusionConfig, fusion_loss_weights
from .gpu_batch import FaceTensors, GPUBatchMaker, GPUDegradation
from .identity_loss import IdentityLossConfig, clean_estimate, identity_loss, load_student, student_record
from .identity_loss import flops_per_image as student_flops_per_image
from .recipe import lr_at

logger = logging.getLogger(__name__)

ROUND_FILE = "round.json"
MODEL_SUBDIR = "model"
GRID_FILE = "val_grid_x8.png"
SNAPSHOT_REQUEST = "snapshot.request"
"""A file in ``OUT`` that asks a running round for a snapshot: the EMA weights and ``round.json`` of the moment in
``OUT/snapshot/`` (written whole, then renamed into place; the request is removed). ``scripts/gpu_round.sh`` asks for
one before a detached round's first command returns."""
SNAPSHOT_DIR = "snapshot"
DEADLINE_FILE = "deadline.json"
"""A file in ``OUT`` (``{"deadline_epoch": E}``) that brings a running round's deadline forward to the epoch time
``E`` (never later): the second command of a detached round knows the device time left to the minute."""
LOG_FILE = "round.log"

ROUND_DEFAULTS: dict[str, Any] = {
    "batch_sizes": [128, 256],
    "bench_steps": 12,
    "bench_max_frac": 0.25,
    "compile": "auto",
    "compile_in_background": False,  # True: measured slower and out of memory on the H100 (round 3); see above
    "compile_min_left_s": 45.0,  # adopt a background compile only with this much training time left
    "compile_cache_max_mib": 4.0,  # save the compile cache for the next session only up to this size (upload room)
    "compile_cache_save_s": 35.0,  # ... only with this much time left (0: always; round 8, slimmed: 20 s)
    "bf16": "auto",
    "channels_last": "auto",
    "lr": R.LR,  # the recipe's numbers: one source with frgd train (.recipe)
    "lr_min_ratio": R.LR_MIN_RATIO,
    "warmup_s": R.WARMUP_S,
    "resume_warmup_s": R.RESUME_WARMUP_S,
    "weight_decay": R.WEIGHT_DECAY,
    "grad_clip": R.GRAD_CLIP,
    "ema_decay": R.EMA_DECAY,
    "min_snr_gamma": R.MIN_SNR_GAMMA,
    "reserve_s": 60.0,
    "export_every_s": 120.0,
    "log_every_s": 10.0,
    "data_probe_every": 25,
    "val_count": 48,
    "val_steps": None,  # None: the product defaults (DEFAULT_STEPS of DEFAULT_SCHEDULER)
    "val_scheduler": None,
    "val_scales": [8, 4],
    "grid_faces": 6,
    "val_identity_use": True,  # the loss with the right / a wrong / no reference embedding (frgd.eval.identity_use)
    "val_identity_scales": [8, 4, 32],  # ... at these scales: x32 (4 px) is the extreme inputs' regime
    # the detail the model keeps / invents in one call (frgd.eval.model_detail) at val_scales, on the first this many
    # validation faces (0: off); 32 = scripts/measure_model_detail.py's default, so rounds 7 and 8's figures compare
    "val_model_detail_faces": 32,
    "identity_standardise": True,  # standardise the identity input with the pack's embeddings (FRGDUNet docstring)
    "mask_bank": 2048,
    "seed": 0,
    "device": "auto",
    "degradation": {},
    "fusion": {},
    "identity_loss": {},  # .identity_loss.IdentityLossConfig: off unless weight > 0 (round_frgd128: on from round 8)
}


def round_config(preset: str | Path | dict[str, Any], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The preset (``round_frgd128`` by default in ``frgd_resources/presets``) with its ``round`` section merged over
    :data:`ROUND_DEFAULTS` and ``overrides`` (``round.key`` values); unknown keys raise :class:`InputError`."""
    from .train import load_config, read_config

    raw = read_config(preset)
    rnd = {**ROUND_DEFAULTS, **raw.pop("round", {}), **(overrides or {})}
    unknown = set(rnd) - set(ROUND_DEFAULTS)
    if unknown:
        raise InputError(f"unknown round config keys: {sorted(unknown)}")
    raw.setdefault("data", {})["size"] = 128
    cfg = load_config(raw)  # validates model/scheduler sections the same way as `frgd train`
    cfg["round"] = rnd
    GPUDegradation.from_dict(rnd["degradation"])
    FusionConfig.from_dict(rnd["fusion"])
    IdentityLossConfig.from_dict(rnd["identity_loss"])
    return cfg


def default_init_dir() -> Path:
    """Where the shipped ``frgd-128`` weights live in the source tree (the folder ``frgd round land`` writes)."""
    from frgd_resources import resource_path

    return Path(resource_path("weights", "frgd-128"))


def previous_round(init_dir: Path) -> dict[str, Any]:
    """``round.json`` of the installed weights (``{}`` before the first round)."""
    p = init_dir / ROUND_FILE
    return json.loads(p.read_text()) if p.is_file() else {}


def init_model(cfg: dict[str, Any], init_dir: Path | None, device: torch.device):
    """The preset's model, with the weights of ``init_dir`` when its architecture matches; ``(model, init_record)``."""
    from .train import build_model, init_weights

    model = build_model(cfg)
    rec: dict[str, Any] = {"from": "scratch"}
    weights = None if init_dir is None else init_dir / WEIGHTS_FILE
    if weights is not None and weights.is_file():
        try:
            init_weights(model, init_dir)
        except InputError:
            rec = {"from": "scratch", "reason": f"architecture of {init_dir} differs from the preset"}
            logger.warning("%s has another architecture than the preset: training from scratch", init_dir)
        else:
            rec = {
                "from": str(init_dir),
                "weights_sha256": file_sha256(weights),
                "round": previous_round(init_dir).get("round"),
            }
    return model.to(device), rec


def flops_per_image(model, cond_channels: int, identity_dim: int, device: torch.device) -> float | None:
    """Forward + backward FLOPs of one 128x128 image (``torch.utils.flop_counter``), or ``None`` if unavailable."""
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:  # pragma: no cover - torch >= 2.1 has it
        return None
    b = 2
    x = torch.randn(b, 3, 128, 128, device=device)
    cond = torch.randn(b, cond_channels, 128, 128, device=device)
    ident = torch.nn.functional.normalize(torch.randn(b, identity_dim, device=device), dim=1)
    t = torch.randint(0, 1000, (b,), device=device)
    counter = FlopCounterMode(display=False)
    with counter:
        model(x, t, cond, ident).float().pow(2).mean().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / b


def matmul_ceiling_tflops(device: torch.device, n: int = 8192, reps: int = 10) -> float | None:
    """Measured bf16 matmul rate (TFLOP/s) on a CUDA device (random data), else ``None``."""
    if device.type != "cuda":
        return None
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e12


def compile_not_used(bench: dict[str, Any], batch_size: int, why: BaseException | str) -> None:
    """Record in ``bench["runs"]`` (and log) a compiled run that training does not use: an error, or a reason."""
    text = str(why)
    if isinstance(why, BaseException):
        logger.warning("torch.compile failed (%s): eager", (text.splitlines() or [""])[0][:200])
    bench["runs"].append({"batch": batch_size, "compile": True, "img_per_s": None, "error": text[:200]})


class RoundTrainer:
    """State of one round (see the module docstring); :meth:`run` does it all."""

    def __init__(
        self,
        cfg: dict[str, Any],
        pack_dir: str | Path,
        out_dir: str | Path,
        deadline_s: float,
        init_dir: str | Path | None = None,
        t_start: float | None = None,
        compile_cache: str | Path | None = None,
    ) -> None:
        """``compile_cache``: an earlier round's ``compile_cache.bin``, loaded before compiling (module docstring)."""
        from ...devices import resolve_device
        from ..model import make_train_scheduler
        from .pack import load_pack

        # t_start: wall-clock epoch seconds when the command began (the shell script's `date +%s.%N`)
        self.t0 = time.monotonic() - (0.0 if t_start is None else max(0.0, time.time() - float(t_start)))
        self.t0_epoch = time.time() - self.elapsed()  # the command's start as an epoch time (DEADLINE_FILE)
        self.deadline_changes: list[dict[str, float]] = []
        self.cfg = cfg
        self.r = cfg["round"]
        self.deadline_s = float(deadline_s)
        if self.deadline_s <= self.r["reserve_s"]:
            raise InputError(f"deadline {deadline_s:g} s leaves no training time after reserve_s={self.r['reserve_s']}")
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.compile_cache = None if compile_cache is None else Path(compile_cache)
        self.device = resolve_device(self.r["device"])
        self.cuda = self.device.type == "cuda"
        self.bf16 = self.cuda if self.r["bf16"] == "auto" else bool(self.r["bf16"])
        self.channels_last = self.cuda if self.r["channels_last"] == "auto" else bool(self.r["channels_last"])
        self.timings: dict[str, float] = {"startup": self.elapsed()}  # the command's start to here: imports
        seed = int(self.r["seed"])
        torch.manual_seed(seed)
        if self.cuda:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
        t = time.perf_counter()
        self.pack = load_pack(pack_dir)
        p = self.pack
        self.data = FaceTensors.build(p.train_images, p.train_ident, p.train_emb, p.train_aug_emb, self.device)
        self.fusion = FusionConfig.from_dict(self.r["fusion"])
        self.maker = GPUBatchMaker(
            self.data,
            GPUDegradation.from_dict(self.r["degradation"]),
            self.fusion,
            seed=seed,
            bank_size=int(self.r["mask_bank"]),
        )
        self.timings["data_setup"] = time.perf_counter() - t
        t = time.perf_counter()
        self.init_dir = Path(init_dir) if init_dir is not None else default_init_dir()
        self.prev = previous_round(self.init_dir)
        self.model, self.init_record = init_model(cfg, self.init_dir, self.device)
        from .train import prepare_identity_input

        self.identity_input = prepare_identity_input(
            self.model, p.train_emb, bool(self.r["identity_standardise"]), self.init_record["from"] != "scratch"
        )
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.model.train()
        self.params = [q for q in self.model.parameters() if q.requires_grad]
        self.ema = [q.detach().clone().float() for q in self.params]
        opt_kwargs: dict[str, Any] = {"fused": True} if self.cuda else {}
        self.opt = torch.optim.AdamW(
            self.params, lr=0.0, weight_decay=float(self.r["weight_decay"]), betas=(0.9, 0.999), **opt_kwargs
        )
        self.pred_type = self.model.config.prediction_type
        self.sched = make_train_scheduler(cfg["scheduler"], prediction_type=self.pred_type)
        self.alphas = self.sched.alphas_cumprod.to(self.device)
        self.id_loss = IdentityLossConfig.from_dict(self.r["identity_loss"])
        self.student = load_student(self.id_loss.student, self.device) if self.id_loss.on else None
        if self.student is not None and self.channels_last:
            self.student = self.student.to(memory_format=torch.channels_last)
        self.id_losses: list[torch.Tensor] = []  # per step since the last log row: (sum over active, active count)
        self.forward = self.model
        self.step = 0
        self.images = 0
        self.curve: list[dict[str, float]] = []
        self.gen = torch.Generator(device=self.device).manual_seed(seed + 1)
        resumed = self.init_record["from"] != "scratch"
        self.warmup_s = float(self.r["resume_warmup_s"] if resumed else self.r["warmup_s"])
        self.train_end_s = self.deadline_s - float(self.r["reserve_s"])
        self.data_times: list[float] = []
        self.step_times: list[float] = []
        self.last_export = 0.0
        self.bg_compile: dict[str, Any] | None = None  # the background compile in flight (see measure)
        self.capture_inputs = False  # set: the next train_step keeps a copy of its forward inputs in captured_inputs
        self.captured_inputs: tuple[torch.Tensor, ...] | None = None
        self.timings["model_setup"] = time.perf_counter() - t

    # ------------------------------------------------------------------------------------------------ one step
    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def lr(self) -> float:
        return lr_at(
            self.elapsed(), self.train_end_s, self.warmup_s, float(self.r["lr"]), float(self.r["lr_min_ratio"])
        )

    def loss_terms(self, batch) -> dict[str, torch.Tensor]:
        """The losses of one on-device batch (a :meth:`.gpu_batch.GPUBatchMaker.make` result) at the current
        weights: ``loss`` (what a step minimises), ``diffusion`` (the min-SNR-weighted fusion loss), and with the
        identity loss on, ``identity`` ``(B,)`` per sample (0 where inactive) and ``active`` ``(B,)``; ``t`` ``(B,)``
        the timesteps."""
        from .train import make_training_inputs, min_snr_weight

        dev = self.device
        b = batch.target.shape[0]
        x0 = batch.target * 2 - 1
        noise = torch.randn(x0.shape, generator=self.gen, device=dev)
        t = torch.randint(0, self.sched.config.num_train_timesteps, (b,), generator=self.gen, device=dev)
        drop = torch.rand(b, generator=self.gen, device=dev) < float(self.model.config.identity_dropout)
        x_t, cond, target = make_training_inputs(self.sched, x0, batch.degraded, batch.mask, batch.noisy, noise, t)
        if self.channels_last:
            x_t = x_t.contiguous(memory_format=torch.channels_last)
            cond = cond.contiguous(memory_format=torch.channels_last)
        if self.capture_inputs:  # an example of the real inputs (dtypes, strides) for a background compile
            self.captured_inputs = tuple(a.detach().clone() for a in (x_t, t, cond, batch.identity, drop))
            self.capture_inputs = False
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=self.bf16):
            pred = self.forward(x_t, t, cond, batch.identity, drop)
        err = (pred.float() - target.float()) ** 2
        w = fusion_loss_weights(batch.mask, batch.checker, self.fusion)
        per = (w * err).mean(dim=(1, 2, 3))
        gamma = self.r["min_snr_gamma"]
        if gamma:
            per = per * min_snr_weight(self.alphas, t, float(gamma), self.pred_type)
        out = {"t": t, "diffusion": per.mean()}
        out["loss"] = out["diffusion"]
        if self.student is not None:  # .identity_loss: the clean estimate is the same person as the true face
            out["active"] = (t < self.id_loss.t_max) & ~drop
            x0_hat = clean_estimate(self.alphas, x_t, t, pred, self.pred_type)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=self.bf16):
                out["identity"] = identity_loss(self.student, x0_hat, x0, out["active"])
            out["loss"] = out["loss"] + float(self.id_loss.weight) * out["identity"].mean()
        return out

    def train_step(self, batch_size: int, probe: bool = False) -> torch.Tensor:
        """One optimisation step on a fresh on-device batch; returns the (unsynchronised) loss tensor."""
        if probe:
            self._sync()
            t_a = time.perf_counter()
        batch = self.maker.make(batch_size)
        if probe:
            self._sync()
            t_b = time.perf_counter()
        for g in self.opt.param_groups:
            g["lr"] = self.lr()
        terms = self.loss_terms(batch)
        loss = terms["loss"]
        if "identity" in terms:
            self.id_losses.append(torch.stack([terms["identity"].sum().detach(), terms["active"].sum().float()]))
        loss.backward()
        if self.r["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(self.params, float(self.r["grad_clip"]))
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        decay = min(float(self.r["ema_decay"]), (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            torch._foreach_lerp_(self.ema, [q.detach().float() for q in self.params], 1 - decay)
        self.step += 1
        self.images += batch_size
        if probe:
            self._sync()
            t_c = time.perf_counter()
            self.data_times.append(t_b - t_a)
            self.step_times.append(t_c - t_a)
        return loss.detach()

    def train_step_capturing(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        """One training step that also returns a copy of its forward inputs (real dtypes and strides): the example a
        compiled model must agree with the eager one on."""
        self.capture_inputs = True
        self.train_step(batch_size)
        assert self.captured_inputs is not None
        return self.captured_inputs

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def _timed_steps(self, batch_size: int, n: int, warm: int = 2) -> float:
        """img/s over ``n`` steps after ``warm`` untimed ones (all train)."""
        for _ in range(warm):
            self.train_step(batch_size)
        self._sync()
        t = time.perf_counter()
        for _ in range(n):
            self.train_step(batch_size)
        self._sync()
        return batch_size * n / (time.perf_counter() - t)

    # ------------------------------------------------------------------------------------------------ phases
    def measure(self) -> dict[str, Any]:
        """Phase 2: img/s per batch size (eager), then compiled at the best; picks the fastest (these steps train)."""
        res: list[dict[str, Any]] = []
        n = int(self.r["bench_steps"])
        budget = float(self.r["bench_max_frac"]) * self.train_end_s
        for bs in self.r["batch_sizes"]:
            if res and self.elapsed() > budget:
                logger.info("bench: out of its time share; skipping batch %d", bs)
                break
            try:
                ips = self._timed_steps(int(bs), n)
            except torch.OutOfMemoryError:
                self.opt.zero_grad(set_to_none=True)
                torch.cuda.empty_cache()
                res.append({"batch": int(bs), "compile": False, "img_per_s": None, "error": "out of memory"})
                continue
            res.append({"batch": int(bs), "compile": False, "img_per_s": ips})
            logger.info("bench batch %d eager: %.0f img/s", bs, ips)
        ok = [r for r in res if r["img_per_s"]]
        if not ok:
            raise InputError(f"no batch size of {self.r['batch_sizes']} fits on {self.device}")
        best = max(ok, key=lambda r: r["img_per_s"])
        bench: dict[str, Any] = {"runs": res, "chosen": dict(best), "compile_s": None}
        want = self.r["compile"]
        if want is True or (want == "auto" and self.cuda and self.elapsed() < budget):
            if self.r["compile_in_background"]:
                self.start_background_compile(int(best["batch"]), bench)
            else:
                bs = int(best["batch"])
                example = None
                if self.compile_cache is not None and self.compile_cache.is_file():
                    bench["compile_cache"] = load_compile_cache(self.compile_cache)
                    if "error" not in bench["compile_cache"]:  # trust cached code only once it agrees with eager
                        example = self.train_step_capturing(bs)
                t = time.perf_counter()
                self.adopt_compiled(bs, bench, torch.compile(self.model), example=example)
                if example is not None and bench["runs"][-1].get("error"):
                    # the carried cache's code failed or disagreed: compile from scratch once, as without a cache
                    bench["compile_cache"]["cold_retry"] = True
                    logger.warning("compiled code from the carried cache refused: compiling from scratch")
                    torch._dynamo.reset()
                    with cold_compile():
                        example = self.train_step_capturing(bs)
                        self.adopt_compiled(bs, bench, torch.compile(self.model), example=example)
                bench["compile_s"] = time.perf_counter() - t
        return bench

    def adopt_compiled(
        self, batch_size: int, bench: dict[str, Any], compiled, example: tuple[torch.Tensor, ...] | None = None
    ) -> None:
        """Train with ``compiled`` (``torch.compile`` of ``self.model``): two steps (the compile itself, or inductor's
        cache after a background compile), then ``bench_steps`` timed ones; kept if ``compile`` is forced or it is
        > 5 % faster than the eager choice. Failures fall back to eager. Records the run in ``bench``.

        With ``example`` (forward inputs), the compiled and the eager model must first agree on it: the proof that the
        compiled code computes with *this* model's weights, not those of the copy it was compiled from."""
        want = self.r["compile"]
        eager = bench["chosen"]
        try:
            t = time.perf_counter()
            if example is not None:
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                    a = compiled(*example).float().detach()
                    b = self.model(*example).float().detach()
                err = float((a - b).norm() / b.norm().clamp_min(1e-12))
                bench["compiled_vs_eager_rel_err"] = err
                if not err < 0.02:
                    raise RuntimeError(f"the compiled model disagrees with the eager one (relative error {err:.3g})")
            self.forward = compiled
            for _ in range(2):
                self.train_step(batch_size)
            self._sync()
            bench["switch_s"] = time.perf_counter() - t
            ips = self._timed_steps(batch_size, int(self.r["bench_steps"]), warm=1)
            run = {"batch": batch_size, "compile": True, "img_per_s": ips}
            bench["runs"].append(run)
            logger.info("bench batch %d compiled: %.0f img/s (switch %.0f s)", batch_size, ips, bench["switch_s"])
            if want is True or ips > 1.05 * eager["img_per_s"]:
                bench["chosen"] = run  # its compile cache is saved after the validation (in the reserve, not training)
            else:
                self.forward = self.model
        except Exception as err:  # noqa: BLE001 - a failed compile must not cost the round
            self.forward = self.model
            self.opt.zero_grad(set_to_none=True)  # a step that failed half-way leaves no gradients behind
            compile_not_used(bench, batch_size, err)

    def start_background_compile(self, batch_size: int, bench: dict[str, Any]) -> None:
        """Compile a copy of the model in a thread, on one captured batch of real inputs (forward and backward, under
        the training autocast), while the caller trains eagerly; :meth:`poll_background_compile` adopts it."""
        import threading

        example = self.train_step_capturing(batch_size)
        shadow = copy.deepcopy(self.model)
        shadow_params = [q for q in shadow.parameters() if q.requires_grad]
        job: dict[str, Any] = {"batch": batch_size, "bench": bench, "t0": time.perf_counter(), "images0": self.images,
                               "example": example}  # fmt: skip

        def work() -> None:
            try:
                compiled = torch.compile(shadow)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                    pred = compiled(*example)
                loss = pred.float().square().mean()
                torch.autograd.grad(loss, shadow_params[:1])  # runs (so compiles) the backward; no .grad touched
                self._sync()
            except BaseException as err:  # noqa: BLE001 - reported to the training thread
                job["error"] = err
            job["seconds"] = time.perf_counter() - job["t0"]

        job["thread"] = threading.Thread(target=work, name="frgd-round-compile", daemon=True)
        self.bg_compile = job
        job["thread"].start()
        logger.info("compiling batch %d in the background; eager steps go on", batch_size)

    def poll_background_compile(self) -> None:
        """Between steps: once the background compile is done, record it and adopt the compiled model (or stay eager on
        an error or when less than ``compile_min_left_s`` of training is left)."""
        job = self.bg_compile
        if job is None or job["thread"].is_alive():
            return
        self.bg_compile = None
        bench = job["bench"]
        bench["compile_s"] = job["seconds"]
        bench["compile_in_background"] = True
        bench["images_during_compile"] = self.images - job["images0"]
        err = job.get("error")
        if err is not None:
            compile_not_used(bench, job["batch"], err)
            return
        logger.info("background compile done in %.0f s (%d images trained meanwhile)", job["seconds"],
                    bench["images_during_compile"])  # fmt: skip
        if self.train_end_s - self.elapsed() < float(self.r["compile_min_left_s"]):
            compile_not_used(bench, job["batch"], "too late")
            return
        self.adopt_compiled(job["batch"], bench, torch.compile(self.model), example=job["example"])

    def finish_background_compile(self, timeout_s: float = 5.0) -> None:
        """After training: record a background compile that was never adopted; give it ``timeout_s`` to end."""
        job, self.bg_compile = self.bg_compile, None
        if job is None:
            return
        job["thread"].join(timeout_s)
        done = not job["thread"].is_alive()
        job["bench"].update({"compile_in_background": True, "compile_s": job.get("seconds") if done else None})
        compile_not_used(job["bench"], job["batch"], "done after the deadline" if done else "not done by the deadline")

    def train_until_deadline(self, batch_size: int) -> None:
        """Phase 3: steps until the training deadline; logs, probes the data share, exports periodically."""
        probe_every = max(1, int(self.r["data_probe_every"]))
        log_every = float(self.r["log_every_s"])
        losses: list[torch.Tensor] = []
        t_log, n_log = self.elapsed(), self.images
        first = True
        while first or self.elapsed() < self.train_end_s:  # at least one step: the data share is measured here
            first = False
            self.poll_background_compile()
            losses.append(self.train_step(batch_size, probe=self.step % probe_every == 0))
            now = self.elapsed()
            if now - t_log >= log_every:
                loss = float(torch.stack(losses).mean())
                if not math.isfinite(loss):
                    raise FloatingPointError(f"loss is {loss} at step {self.step}")
                row = {
                    "t": round(now, 2),
                    "step": self.step,
                    "images": self.images,
                    "loss": loss,
                    "lr": self.lr(),
                    "img_per_s": (self.images - n_log) / max(now - t_log, 1e-9),
                }
                if self.id_losses:  # the identity loss's mean over its active samples (the total loss includes it)
                    s_, n_ = torch.stack(self.id_losses).sum(0).tolist()
                    row["identity_loss"] = s_ / max(n_, 1.0)
                    self.id_losses = []
                self.curve.append(row)
                logger.info(
                    "t %.0f s step %d loss %.4f lr %.2e %.0f img/s", now, self.step, loss, row["lr"], row["img_per_s"]
                )
                losses, t_log, n_log = [], now, self.images
            if now - self.last_export >= float(self.r["export_every_s"]):
                self.export(status="partial")
            self.poll_control()

    def poll_control(self) -> None:
        """Serve the control files a detached round's commands leave in ``OUT`` (:data:`SNAPSHOT_REQUEST`,
        :data:`DEADLINE_FILE`); two ``stat`` calls per step when there are none."""
        req = self.out / SNAPSHOT_REQUEST
        if req.exists():
            self.snapshot()
            req.unlink(missing_ok=True)
        path = self.out / DEADLINE_FILE
        if path.exists():
            try:
                epoch = float(json.loads(path.read_text())["deadline_epoch"])
            except (OSError, ValueError, KeyError, TypeError) as err:
                logger.warning("%s ignored: %s", path, err)
                epoch = None
            path.unlink(missing_ok=True)
            if epoch is not None:
                self.bring_deadline_forward(epoch - self.t0_epoch)

    def bring_deadline_forward(self, deadline_s: float) -> None:
        """Move the deadline to ``deadline_s`` (seconds from the command's start) if that is earlier: the training
        ends ``reserve_s`` before it, and the LR's cosine reaches its floor there (:func:`lr_at`)."""
        if deadline_s >= self.deadline_s:
            logger.info(
                "deadline %.0f s kept (asked for %.0f s: only an earlier one is taken)", self.deadline_s, deadline_s
            )
            return
        now = self.elapsed()
        self.deadline_changes.append({"at_s": round(now, 1), "from_s": self.deadline_s, "to_s": round(deadline_s, 1)})
        logger.info("deadline brought forward from %.0f s to %.0f s (now %.0f s)", self.deadline_s, deadline_s, now)
        self.deadline_s = float(deadline_s)
        self.train_end_s = max(now, self.deadline_s - float(self.r["reserve_s"]))

    def snapshot(self) -> Path:
        """The EMA weights and ``round.json`` of this moment (status ``"partial"``) in ``OUT/snapshot/``."""
        dest = self.out / SNAPSHOT_DIR
        tmp = self.out / (SNAPSHOT_DIR + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        self.export(status="partial", dest=tmp)
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
        logger.info("snapshot at step %d (%d images) in %s", self.step, self.images, dest)
        return dest

    # ------------------------------------------------------------------------------------------------ outputs
    def ema_model(self):
        """A float32 copy of the model holding the EMA weights (eval mode)."""
        m = copy.deepcopy(self.model).float().eval()
        with torch.no_grad():
            for q, e in zip([q for q in m.parameters() if q.requires_grad], self.ema):
                q.copy_(e)
        return m

    def export(self, status: str, extra: dict[str, Any] | None = None, dest: Path | None = None) -> Path:
        """Write the EMA weights as an fp16 model folder and ``round.json`` into ``dest`` (default ``OUT``; the model
        folder atomically replaced)."""
        from ..model import IdentityInfo, save_model_dir

        dest = self.out if dest is None else Path(dest)
        m = self.ema_model().half()
        tmp = dest / (MODEL_SUBDIR + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        save_model_dir(tmp, m, self.sched, IdentityInfo(backend=self.identity_backend, dim=int(m.config.identity_dim)))
        final = dest / MODEL_SUBDIR
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        self.write_state(status, extra, dest=dest)
        self.last_export = self.elapsed()
        return final

    @property
    def identity_backend(self) -> str:
        origin = str(self.pack.info.get("origin", ""))
        return "synthetic" if origin.startswith("synthetic") else str(self.cfg["identity"]["backend"])

    def write_state(self, status: str, extra: dict[str, Any] | None = None, dest: Path | None = None) -> dict[str, Any]:
        # images and steps add up only along one line of weights (a round from scratch starts a new count)
        prev_cum = self.prev.get("cumulative", {}) if self.init_record["from"] != "scratch" else {}
        train_s = (self.curve[-1]["t"] - self.curve[0]["t"]) if len(self.curve) > 1 else None
        state = {
            "round": int(self.prev.get("round", 0)) + 1,
            "status": status,
            "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "device": torch.cuda.get_device_name(self.device) if self.cuda else str(self.device),
            "torch": torch.__version__,
            "init": self.init_record,
            "identity_input": self.identity_input,
            "identity_loss": student_record(self.id_loss, self.student),
            "pack": self.pack.info,
            "steps": self.step,
            "images": self.images,
            "epochs": self.images / max(len(self.data), 1),
            "elapsed_s": round(self.elapsed(), 1),
            "deadline_s": self.deadline_s,
            "deadline_changes": self.deadline_changes,
            "timings": {k: round(v, 2) for k, v in self.timings.items()},
            "bf16": self.bf16,
            "warmup_s": self.warmup_s,
            "train_end_s": self.train_end_s,
            "data_share": (sum(self.data_times) / sum(self.step_times)) if self.step_times else None,
            "loss_curve": self.curve,
            "train_window_s": train_s,
            "cumulative": {
                "rounds": int(self.prev.get("round", 0)) + 1,
                "images": int(prev_cum.get("images", 0)) + self.images,
                "steps": int(prev_cum.get("steps", 0)) + self.step,
            },
            "config": {k: v for k, v in self.cfg.items() if k in ("name", "model", "scheduler", "round")},
        }
        state.update(getattr(self, "summary", {}))
        state.update(extra or {})
        dest = self.out if dest is None else Path(dest)
        tmp = dest / (ROUND_FILE + ".tmp")
        tmp.write_text(json.dumps(state, indent=1, default=float) + "\n")
        os.replace(tmp, dest / ROUND_FILE)
        return state

    def run(self) -> dict[str, Any]:
        """All phases; returns the final ``round.json`` content."""
        n_params = sum(q.numel() for q in self.params)
        t = time.perf_counter()
        fl = flops_per_image(
            self.model, int(self.model.config.cond_channels), int(self.model.config.identity_dim), self.device
        )
        id_fl = None if self.student is None else student_flops_per_image(self.student)
        ceiling = matmul_ceiling_tflops(self.device)
        self.timings["flops_and_ceiling"] = time.perf_counter() - t
        self.summary: dict[str, Any] = {"params": n_params, "flops_per_image": fl, "matmul_tflops": ceiling}
        if id_fl is not None:  # the identity loss's share (the student), counted in the MFU
            self.summary["identity_loss_flops_per_image"] = id_fl
            fl = None if fl is None else fl + id_fl
        # the carried compile cache given to this round (loaded only when it compiles: bench["compile_cache"])
        self.summary["compile_cache_given"] = None if self.compile_cache is None else self.compile_cache.name
        logger.info(
            "round: %d faces on %s, %.2f M params, %.1f GFLOP/img, init %s",
            len(self.data), self.device, n_params / 1e6, (fl or 0) / 1e9, self.init_record["from"],
        )  # fmt: skip
        self.timings["setup"] = self.elapsed()
        slim: dict[str, Any] = {}  # the kernels bundled into the compile cache, without their compilation stages
        with slim_kernel_bundles(slim):
            bench = self.measure()
            self.summary["bench"] = bench
            self.timings["bench"] = self.elapsed() - self.timings["setup"]
            bs = int(bench["chosen"]["batch"])
            self.export(status="partial")  # usable weights as early as possible
            t_train = self.elapsed()
            i_train = self.images
            self.train_until_deadline(bs)
            self._sync()
            self.finish_background_compile()
        if slim:
            bench.setdefault("compile_cache", {})["slim"] = slim
        dt = self.elapsed() - t_train
        ips = (self.images - i_train) / max(dt, 1e-9)
        self.summary.update(
            {
                "batch_size": bs,
                "compiled": bool(bench["chosen"].get("compile")),
                "img_per_s": ips,
                "mfu": (ips * fl / (ceiling * 1e12)) if (fl and ceiling) else None,
                # the settled rate (median of the last three 10-s rows): after a background compile was adopted
                "img_per_s_final": float(np.median([r["img_per_s"] for r in self.curve[-3:]])) if self.curve else ips,
            }
        )
        self.timings["train"] = dt
        t = self.elapsed()
        self.export(status="trained")
        self.timings["export"] = self.elapsed() - t
        t = self.elapsed()
        try:
            val = validate(self.ema_model().to(self.device), self.sched, self.pack, self.r, self.out)
        except Exception as err:  # noqa: BLE001 - the weights are exported; a failed check is recorded, not fatal
            logger.exception("validation failed")
            val = {"error": f"{type(err).__name__}: {err}"[:500]}
        self.timings["validate"] = self.elapsed() - t
        state = self.write_state("complete", {"val": val})  # before the cache: a kill while compressing keeps this
        if bench["chosen"].get("compile"):  # for the next session's first call (module docstring)
            left, need = self.deadline_s - self.elapsed(), float(self.r["compile_cache_save_s"])
            if 0 < need and left < need:  # compressing takes tens of seconds: never past the deadline
                logger.info("compile cache not saved: %.0f s left before the deadline (< %g s)", left, need)
                save = {"saved_bytes": 0, "why": f"{left:.0f} s left before the deadline, under compile_cache_save_s"}
            else:
                save = save_compile_cache(self.out, int(float(self.r["compile_cache_max_mib"]) * 2**20))
            bench.setdefault("compile_cache", {})["save"] = save
            state = self.write_state("complete", {"val": val})
        return state


def validate(model, scheduler, pack, r: dict[str, Any], out_dir: Path | None = None) -> dict[str, Any]:
    """Quick check on the pack's validation pairs: PSNR/SSIM of bicubic and FRGD (content end, no reference;
    reference embedding with CFG 1 and 3) at each of ``r["val_scales"]``; a sample grid at the first scale."""
    from ...eval.faces import degrade_faces, face_metrics, grid_image, upscale_faces
    from ...tensor import image_to_tensor, tensor_to_image
    from ..sampling.guidance import GuidanceWeights
    from ..sampling.pipeline import FRGDPipeline
    from ..sampling.schedulers import DEFAULT_SCHEDULER, DEFAULT_STEPS

    t0 = time.perf_counter()
    n = min(int(r["val_count"]), len(pack.val_images))
    if n == 0:
        return {"skipped": "no validation pairs in the pack"}
    dev = next(model.parameters()).device
    pipe = FRGDPipeline(model, scheduler, identity_backend="none", device=dev, name="round")
    gts = list(pack.val_images[:n])
    refs = torch.from_numpy(pack.val_ref_emb[:n]).float()
    # fixed weights without harmonising passes (as in rounds 1-3) and without the final back-projection (added to the
    # product after round 7), so that rounds compare
    modes = {
        "frgd_noref_content1": (None, GuidanceWeights(identity=0.0, content=1.0, cfg=0.0, resample=0)),
        "frgd_ref_cfg1_content1": (refs, GuidanceWeights(identity=0.0, content=1.0, cfg=1.0, resample=0)),
        "frgd_ref_cfg3_content0.1": (refs, GuidanceWeights(identity=0.0, content=0.1, cfg=3.0, resample=0)),
    }
    steps = int(r["val_steps"] or DEFAULT_STEPS)
    scheduler_name = str(r["val_scheduler"] or DEFAULT_SCHEDULER)
    res: dict[str, Any] = {"faces": n, "steps": steps, "scheduler": scheduler_name, "scales": {}}
    grid_rows = None
    for si, scale in enumerate(r["val_scales"]):
        lqs = degrade_faces(gts, float(scale))  # the inputs of `frgd eval faces` (seed 0)
        outs: dict[str, list[np.ndarray]] = {"bicubic": upscale_faces(lqs, 128)}
        lq = torch.cat([image_to_tensor(x) for x in lqs])
        for name, (ref, w) in modes.items():
            o = pipe(
                lq,
                references=ref,
                reference_per_sample=ref is not None,
                num_samples=n,
                seeds=list(range(n)),
                steps=steps,
                scheduler=scheduler_name,
                weights=w,
                back_projection=False,
            )
            outs[name] = [tensor_to_image(x) for x in o.images]
        res["scales"][f"x{scale:g}"] = {name: face_metrics(arr, gts) for name, arr in outs.items()}
        if si == 0:
            k = min(int(r["grid_faces"]), n)
            cols = [upscale_faces(lqs[:k], 128, "nearest")] + [outs[m][:k] for m in ("bicubic", *modes)] + [gts[:k]]
            grid_rows = grid_image(cols, k)
    if r["val_identity_use"]:  # whether the conditional model uses the reference at all (no sampling, seconds)
        from ...eval.identity_use import identity_use

        scales = [float(s) for s in r["val_identity_scales"]]
        res["identity_use"] = identity_use(model, scheduler, gts, refs, scales=scales)
    k = min(int(r["val_model_detail_faces"]), n)
    if k > 0:  # the detail the model keeps and draws where x_t has none (no sampling, seconds)
        from ...eval.model_detail import model_detail

        scales = [float(s) for s in r["val_scales"]]
        res["model_detail"] = model_detail(model, scheduler, gts[:k], refs[:k], scales=scales)
    if out_dir is not None and grid_rows is not None:
        import cv2

        cv2.imwrite(str(Path(out_dir) / GRID_FILE), grid_rows[:, :, ::-1])
        res["grid_columns"] = ["input (nearest)", "bicubic", *modes, "ground truth"]
    res["seconds"] = time.perf_counter() - t0
    return res


def read_round_output(src: Path) -> dict[str, Any]:
    """``round.json`` of the round output folder ``src`` (:class:`InputError` when it holds no round output)."""
    if not (src / ROUND_FILE).is_file() or not (src / MODEL_SUBDIR / WEIGHTS_FILE).is_file():
        raise InputError(f"{src} holds no round output ({ROUND_FILE} and {MODEL_SUBDIR}/{WEIGHTS_FILE})")
    return json.loads((src / ROUND_FILE).read_text())


def load_round_model(model_dir: Path, device: str | torch.device = "cpu"):
    """The model folder of a round (:func:`~frgd.diffusion.model.load_model_dir`); it must load and be finite."""
    from ..model import load_model_dir

    bundle = load_model_dir(model_dir, device=device)
    if not all(torch.isfinite(q).all() for q in bundle.model.parameters()):
        raise InputError(f"{model_dir}: the weights hold NaN or inf")
    return bundle


def validate_round(
    out_dir: str | Path, pack_dir: str | Path, dest_dir: str | Path, device: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Validate a round whose command ended before its own check (``status`` ``"trained"`` or ``"partial"``, or a
    check that failed): copy ``out_dir`` (read-only as the device returns it) to ``dest_dir``, run :func:`validate`
    there on ``device`` with the round's own settings, and write ``round.json`` as ``"complete"``, with
    ``val_after`` recording where and from what. The check runs on the exported fp16 weights (in float32), not the
    float32 EMA the machine validates. Returns the new state; ``frgd round land dest_dir`` lands it."""
    from .pack import load_pack

    src, dest = Path(out_dir), Path(dest_dir)
    state = read_round_output(src)
    if dest.resolve() == src.resolve():
        raise InputError("give another folder for the validated copy (the round's output stays as it came back)")
    if dest.exists() and any(dest.iterdir()):
        raise InputError(f"{dest} exists and is not empty")
    r = dict(ROUND_DEFAULTS, **(state.get("config", {}).get("round") or {}))
    dest.mkdir(parents=True, exist_ok=True)
    for f in (src / MODEL_SUBDIR).rglob("*"):  # plain copies: the returned files and folders are read-only
        if f.is_file():
            (dest / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dest / f.relative_to(src))
    if (src / LOG_FILE).is_file():
        shutil.copyfile(src / LOG_FILE, dest / LOG_FILE)
    bundle = load_round_model(dest / MODEL_SUBDIR, device=device)
    pack = load_pack(pack_dir)
    t = time.perf_counter()
    val = validate(bundle.model, bundle.scheduler, pack, r, dest)
    state["val_after"] = {
        "status_before": state.get("status"),
        "device": str(device),
        "torch": torch.__version__,
        "weights": "the exported fp16 weights, run in float32",
        "seconds": round(time.perf_counter() - t, 1),
    }
    state.update(status="complete", val=val)
    (dest / ROUND_FILE).write_text(json.dumps(state, indent=1) + "\n")
    return state


def run_round(
    pack_dir: str | Path,
    out_dir: str | Path,
    deadline_s: float,
    preset: str | Path | dict[str, Any] = "round_frgd128",
    overrides: dict[str, Any] | None = None,
    init_dir: str | Path | None = None,
    t_start: float | None = None,
    compile_cache: str | Path | None = None,
) -> dict[str, Any]:
    """Run one round (see the module docstring); returns ``round.json``'s content."""
    cfg = round_config(preset, overrides)
    return RoundTrainer(cfg, pack_dir, out_dir, deadline_s, init_dir, t_start, compile_cache).run()


# ---------------------------------------------------------------------------------------------------------- land


def land_round(
    out_dir: str | Path,
    weights_dir: str | Path | None = None,
    results_dir: str | Path | None = None,
    force: bool = False,
    keep_cache: str | Path | None = None,
) -> dict[str, Any]:
    """Install a round's weights as the shipped ``frgd-128`` (fp16 model folder + ``round.json``) and record the round
    in ``results_dir/round_NNN.json`` (and its ``round.log`` as ``round_NNN.log``). Refuses (unless ``force``) a round
    that does not follow the installed one, and one whose validation regressed (:func:`regressions`: its record is
    kept as ``round_NNN_not_landed.json``, and the next round starts again from the installed weights). The round's
    ``compile_cache.bin``, if any, replaces the file ``keep_cache`` (``frgd round land`` keeps it in the tree, so the
    next session's new checkout uploads it with the next round's first command)."""
    src = Path(out_dir)
    state = read_round_output(src)
    dest = Path(weights_dir) if weights_dir is not None else default_init_dir()
    prev = previous_round(dest)
    installed = prev.get("round", 0)
    if state["round"] != installed + 1 and not force:
        raise InputError(f"round {state['round']} does not follow the installed round {installed}; use --force")
    load_round_model(src / MODEL_SUBDIR)  # must load, finite
    if not force and "scales" not in (state.get("val") or {}) and "scales" in (prev.get("val") or {}):
        raise InputError(
            f"round {state['round']} has no validation (status {state.get('status')!r}"
            + (f", {state['val']['error']}" if "error" in (state.get("val") or {}) else "")
            + f"): run `frgd round validate {src} --pack .carry/round/pack --out DIR` and land DIR"
        )
    worse = regressions(state, prev)
    if worse and not force:
        if results_dir is not None:
            Path(results_dir).mkdir(parents=True, exist_ok=True)
            rec = Path(results_dir) / f"round_{state['round']:03d}_not_landed.json"
            rec.write_text(json.dumps({**state, "not_landed": worse}, indent=1) + "\n")
        raise InputError(
            f"round {state['round']} is worse than the installed round {installed} on its validation ("
            + "; ".join(worse)
            + "): not landed (the record is kept; --force lands it anyway)"
        )
    tmp = dest.with_name(dest.name + ".landing")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src / MODEL_SUBDIR, tmp)
    shutil.copy2(src / ROUND_FILE, tmp / ROUND_FILE)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    if results_dir is not None:
        rd = Path(results_dir)
        rd.mkdir(parents=True, exist_ok=True)
        (rd / f"round_{state['round']:03d}.json").write_text(json.dumps(state, indent=1) + "\n")
        if (src / LOG_FILE).is_file():
            shutil.copy2(src / LOG_FILE, rd / f"round_{state['round']:03d}.log")
    if keep_cache is not None and (src / COMPILE_CACHE_FILE).is_file():
        Path(keep_cache).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / COMPILE_CACHE_FILE, keep_cache)
        logger.info("kept the compile cache as %s for the next round's first call (commit it)", keep_cache)
    logger.info("landed round %d into %s", state["round"], dest)
    return state


LAND_TOLERANCE_DB = 0.05
"""A round whose content-end validation PSNR falls more than this below the installed round's, at any scale, is not
landed (rounds 3-5 moved it by +0.03 to +0.10 dB per round on the same 48 pairs)."""
LAND_ROW = "frgd_noref_content1"


def regressions(state: dict[str, Any], installed: dict[str, Any], tol_db: float = LAND_TOLERANCE_DB) -> list[str]:
    """Where ``state``'s validation is worse than ``installed``'s: the content-end PSNR (:data:`LAND_ROW`) at each
    scale both measured, by more than ``tol_db``; ``[]`` when either has no validation to compare (the first round,
    a failed check) or the validation sets differ."""
    new, old = state.get("val") or {}, installed.get("val") or {}
    if "scales" not in new or "scales" not in old or new.get("faces") != old.get("faces"):
        return []
    out = []
    for scale, rows in new["scales"].items():
        before = old["scales"].get(scale, {}).get(LAND_ROW, {}).get("psnr")
        after = rows.get(LAND_ROW, {}).get("psnr")
        if before is not None and after is not None and after < before - tol_db:
            out.append(f"{scale} content end {after:.2f} dB < {before:.2f} dB")
    return out


# ---------------------------------------------------------------------------------------------------------- plan

UPLOAD_LIMIT = 64 * 2**20
UPLOAD_MARGIN = 4 * 2**20


def upload_bytes(repo: str | Path, carry: list[str | Path] | None = None) -> dict[str, Any]:
    """Bytes one device command uploads: the tracked and untracked-not-ignored files of ``repo`` plus ``carry``."""
    import subprocess

    repo = Path(repo)
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=repo,
            check=True,
            capture_output=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise InputError(f"{repo} is not a git checkout ({err})") from None
    tree = sum((repo / f).stat().st_size for f in out.decode().split("\0") if f and (repo / f).is_file())
    carried: dict[str, int] = {}
    for c in carry or []:
        p = repo / c
        if not p.exists():
            raise InputError(f"carry path {c} does not exist")
        carried[str(c)] = (
            p.stat().st_size if p.is_file() else sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        )
    total = tree + sum(carried.values())
    return {
        "tree_bytes": tree,
        "carry_bytes": carried,
        "total_bytes": total,
        "limit_bytes": UPLOAD_LIMIT,
        "margin_bytes": UPLOAD_LIMIT - total,
        "fits": UPLOAD_LIMIT - total >= UPLOAD_MARGIN,
    }


__all__ = [
    "ROUND_DEFAULTS",
    "RoundTrainer",
    "land_round",
    "regressions",
    "lr_at",
    "round_config",
    "run_round",
    "upload_bytes",
    "validate",
    "validate_round",
]
