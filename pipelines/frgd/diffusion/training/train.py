"""FRGD training loop (``frgd train``): accelerate, EMA, v/epsilon prediction, fusion supervision, exact resume.

One step (per process, batch ``B``)::

    x0 = 2 * target - 1;  eps ~ N(0, I);  t ~ U{0..T-1};  x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps
    known = x_t where the sample uses noisy fusion else x0            (see frgd.diffusion.training.fusion)
    cond = [2 * degraded - 1, M, known * (1 - M)]
    identity = embedding of the reference (precomputed, or the identity encoder on the device), null-dropped with
               probability model.config.identity_dropout
    loss = mean_b( snr_w(t_b) * mean_pixels( w_fusion * (model(x_t, t, cond, identity) - target_{v|eps})^2 ) )

``snr_w`` is the min-SNR-gamma weight (``min(SNR, gamma) / SNR`` for epsilon, ``min(SNR, gamma) / (SNR + 1)`` for v)
when ``train.min_snr_gamma`` is set, else 1. With ``identity_loss.weight`` > 0 the rounds' identity loss is added,
``weight * mean_b(active_b * (1 - cos(f(x0_hat_b), f(x0_b))))`` (:mod:`.identity_loss`: the same config section and
code as the rounds).

Run folder (``--output``)::

    config.json             the merged configuration
    train_log.jsonl         one JSON row per ``log_every`` steps: step, epoch, loss, lr, img_per_s, elapsed_s
    samples/step_XXXXXXX.png  quick DDIM restorations of a few fixed val faces (rows: degraded | EMA sample | target)
    checkpoints/step_XXXXXXX/  model.safetensors, ema.safetensors, training_state.pt (optimizer, LR scheduler,
                            torch RNG), state.json (step, EMA counters, numpy/python RNG states, data position)
    model/                  the final model directory (EMA weights; see frgd.diffusion.model)

**A time budget** (``train.time_budget_min``, ``--time-budget-min``): train for that many minutes of wall-clock time
with the learning rate a function of the time, as the GPU rounds do (:mod:`.recipe`): a linear warm-up over
``optim.warmup_steps`` steps, then a cosine from ``optim.lr`` to ``optim.lr_min_ratio`` of it reached exactly when the
budget ends, so the run ends at a low LR whatever the GPU's speed. ``train.steps`` is then a cap (``null``: none).
With several processes every one of them uses the main process's clock (broadcast each step), so they set the same
LR and stop at the same step. The budget counts training time across ``--resume`` (``state.json``: ``elapsed_s``).
``train.max_minutes`` is a safety stop only: it stops early (checkpoint + export) but a step-count schedule keeps its
length, so a run stopped by it ends with a high LR.

**Continuing a model** (``train.init_from``, ``--init-from``: a model folder, or a model name such as ``frgd-128``,
the installed one): its EMA weights with a fresh optimizer. With ``"model": {"from": "init"}`` the model and the
noise schedule are read from that folder, so the run continues it whatever its architecture; the ``train_frgd128``
preset does that for the shipped FRGD-128 with the rounds' recipe (the defaults here are :mod:`.recipe`'s numbers:
LR, min-SNR 5, EMA 0.999, gradient clip; the same degradations, extreme inputs included, and fusion masks).

Resume (``resume=True``) restores the latest checkpoint exactly: model, EMA, optimizer, LR scheduler, step, the
torch/numpy/python RNG states, the noise generator and the data position (the sampler restarts at the same batch), so
an interrupted run ends with the same weights as an uninterrupted one (tested).
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ...archs.frgd_unet_arch import (
    IDENTITY_STATISTICS,
    FRGDUNet,
    identity_statistics,
    standardise_identity_input,
    tiny_config,
)
from ...errors import InputError
from ...jobs import CancelToken, ProgressFn, check_cancel, report
from ..model import IdentityInfo, build_cond, make_train_scheduler, save_model_dir
from . import recipe as R
from .data import Embeddings, EpochSampler, FacesDataConfig, FacesDataset, SyntheticFaces, collate
from .fusion import FusionConfig, fusion_loss_weights
from .identity_loss import IdentityLossConfig, clean_estimate, identity_loss, load_student

logger = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "name": "frgd",
    "model": {"tiny": False},
    "scheduler": {"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2"},
    "data": {
        "root": None,
        "synthetic": False,
        "synthetic_items": 256,
        "synthetic_identities": 32,
        "embeddings": None,
        "size": 128,
        "max_items": None,
        "max_identities": None,
        "flip": True,
        "degradation": {},
        "num_workers": 0,
    },
    "fusion": {},
    "identity_loss": asdict(IdentityLossConfig()),  # .identity_loss (off unless weight > 0), as the rounds
    "identity": {"backend": "dlib"},
    "optim": {  # the rounds' recipe (.recipe): one source
        "lr": R.LR,
        "betas": [0.9, 0.999],
        "weight_decay": R.WEIGHT_DECAY,
        "eps": 1e-8,
        "warmup_steps": 100,
        "lr_schedule": "cosine",  # by step count; with train.time_budget_min by wall-clock time (module docstring)
        "lr_min_ratio": R.LR_MIN_RATIO,  # the end of a time budget's cosine
        "grad_clip": R.GRAD_CLIP,
    },
    "ema": {"decay": R.EMA_DECAY, "use_warmup": True, "inv_gamma": 1.0, "power": 0.75, "update_after_step": 0},
    "train": {
        "steps": None,  # a run ends at train.steps or at time_budget_min, whichever comes first (at least one)
        "batch_size": 16,
        "seed": 0,
        "mixed_precision": "auto",
        "device": "auto",
        "num_threads": None,
        "min_snr_gamma": R.MIN_SNR_GAMMA,
        "log_every": 10,
        "checkpoint_every": 500,
        "keep_checkpoints": 2,
        "sample_every": 0,
        "sample_count": 4,
        "sample_steps": 25,
        "max_minutes": None,
        "time_budget_min": None,  # train for this many minutes, the LR a function of the time (module docstring)
        "init_from": None,  # a model folder or a model name (frgd-128: the installed one)
        "identity_standardise": True,  # standardise the identity input with the training embeddings (FRGDUNet)
        "export_dtype": "fp32",
    },
}


def _merge(base: dict[str, Any], over: dict[str, Any], path: str = "") -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if k not in base:
            raise InputError(f"unknown config key {path}{k!r}")
        if isinstance(base[k], dict) and k not in ("model", "degradation", "fusion", "scheduler"):
            if not isinstance(v, dict):
                raise InputError(f"config key {path}{k!r} must be an object")
            out[k] = _merge(base[k], v, f"{path}{k}.")
        else:
            out[k] = copy.deepcopy(v)
    return out


def read_config(path_or_dict: str | Path | dict[str, Any]) -> dict[str, Any]:
    """The raw JSON object of a config (a copy for a dict) without its ``_comment`` keys. A bare file name that does
    not exist is looked up in ``frgd_resources/presets/`` (``.json`` optional)."""
    if isinstance(path_or_dict, dict):
        raw = copy.deepcopy(path_or_dict)
    else:
        p = Path(path_or_dict)
        if not p.is_file():
            try:
                from frgd_resources import resource_path

                alt = resource_path("presets", p.name if p.suffix else p.name + ".json")
            except ImportError:  # pragma: no cover - resources package always installed with the project
                alt = p
            if not alt.is_file():
                raise InputError(f"config not found: {p}")
            p = alt
        try:
            raw = json.loads(p.read_text())
        except json.JSONDecodeError as err:
            raise InputError(f"{p}: invalid JSON ({err})") from None
    return {k: v for k, v in raw.items() if not k.startswith("_")}


def load_config(path_or_dict: str | Path | dict[str, Any]) -> dict[str, Any]:
    """Read a training config (JSON file, preset name or dict; :func:`read_config`) merged over :data:`DEFAULTS`;
    unknown keys raise InputError."""
    raw = read_config(path_or_dict)
    cfg = _merge(DEFAULTS, raw)
    fusion = FusionConfig.from_dict(cfg["fusion"])  # validates
    cfg["fusion"] = {k: getattr(fusion, k) for k in fusion.__dataclass_fields__}
    IdentityLossConfig.from_dict(cfg["identity_loss"])  # validates
    if cfg["train"]["export_dtype"] not in ("fp32", "fp16"):
        raise InputError(f"train.export_dtype must be fp32 or fp16, got {cfg['train']['export_dtype']!r}")
    tcfg = cfg["train"]
    budget = tcfg["time_budget_min"]
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0):
        raise InputError(f"train.time_budget_min must be a positive number of minutes, got {budget!r}")
    for key in ("batch_size", "steps"):
        v = tcfg[key]
        if key == "steps" and v is None:
            continue  # the time budget ends the run (a run needs one of them: Trainer)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise InputError(f"train.{key} must be a positive integer, got {v!r}")
    model = cfg["model"]
    if isinstance(model, dict) and model.get("from") is not None:
        if model != {"from": "init"}:
            raise InputError(f'model: "from" takes only "init" and no other key, got {model!r}')
        if not tcfg["init_from"]:
            raise InputError('model {"from": "init"} needs train.init_from (--init-from): the model to continue')
    return cfg


def architecture(model_config: dict[str, Any]) -> dict[str, Any]:
    """The architecture-defining part of an :class:`FRGDUNet` config (what must match to start from earlier weights):
    every constructor argument, defaults filled in, except the training-only ``identity_dropout`` and the identity
    input's statistics (``identity_center``, ``identity_scale``: data, not shapes;
    :func:`init_weights` carries them)."""
    params = inspect.signature(FRGDUNet.__init__).parameters
    full = {k: v.default for k, v in params.items() if k != "self"}
    full.update({k: v for k, v in dict(model_config).items() if k in full})
    skip = {"identity_dropout", *IDENTITY_STATISTICS}
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in full.items() if k not in skip}


def init_weights(model: FRGDUNet, model_dir: str | Path) -> None:
    """Load the weights of a model folder (e.g. the EMA weights of an earlier run or round) into ``model``, with the
    statistics of its identity input (the weights' function depends on them); :class:`InputError` when its
    architecture differs."""
    from ..model import load_model_dir

    prev = load_model_dir(model_dir, device="cpu", dtype=torch.float32).model
    if architecture(dict(prev.config)) != architecture(dict(model.config)):
        raise InputError(f"{model_dir}: its architecture differs from the configured model")
    model.load_state_dict(prev.state_dict())
    model.set_identity_statistics(prev.config.identity_center, prev.config.identity_scale)


def prepare_identity_input(model, train_emb: np.ndarray | None, enabled: bool, trained: bool) -> dict[str, Any]:
    """Standardise ``model``'s identity input with the statistics of the training embeddings ``(N, D)`` (rounds and
    ``frgd train``; :class:`frgd.archs.frgd_unet_arch.FRGDUNet`): kept when the initial weights have it; otherwise
    converted keeping the function of ``trained`` weights
    (:func:`~frgd.archs.frgd_unet_arch.standardise_identity_input`), or set on a fresh model; left as it is when
    ``train_emb`` is ``None`` (embeddings encoded on the fly). Returns the record (``round.json``; the statistics
    themselves are in the model's config)."""
    if model.config.identity_center is not None:
        return {"standardised": True, "how": "kept from the initial weights", "scale": model.config.identity_scale}
    if not enabled:
        return {"standardised": False}
    if train_emb is None:
        logger.info("identity input as the weights have it: no precomputed embeddings to standardise with")
        return {"standardised": False, "how": "no precomputed embeddings"}
    center, scale = identity_statistics(torch.from_numpy(np.asarray(train_emb, np.float32)))
    if trained:
        standardise_identity_input(model, center, scale)
        how = "converted: the initial weights' function kept"
    else:
        model.set_identity_statistics(center, scale)
        how = "set on the fresh model"
    logger.info("identity input standardised (%s; scale %.4f from %d embeddings)", how, scale, len(train_emb))
    return {"standardised": True, "how": how, "scale": scale, "embeddings": int(len(train_emb))}


def resolve_init(cfg: dict[str, Any]) -> dict[str, Any]:
    """A copy of a merged config with ``train.init_from`` resolved to a folder (a path, or a model name of
    :func:`frgd.weights.resolve_model_dir`, e.g. ``frgd-128``: the installed model) and, for ``"model": {"from":
    "init"}``, the model and scheduler sections read from that folder (its architecture, prediction type and identity
    dropout; its noise schedule): the run continues that model whatever its architecture."""
    cfg = copy.deepcopy(cfg)
    init = cfg["train"]["init_from"]
    if not init:
        return cfg
    from ...weights import resolve_model_dir

    path = resolve_model_dir(init)
    cfg["train"]["init_from"] = str(path)
    if cfg["model"] == {"from": "init"}:
        try:
            model_cfg = json.loads((path / "config.json").read_text())
            sched_cfg = json.loads((path / "scheduler" / "scheduler_config.json").read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise InputError(f"{path}: not a readable FRGD model folder ({err})") from None
        arch = architecture(model_cfg)
        default_dropout = inspect.signature(FRGDUNet.__init__).parameters["identity_dropout"].default
        arch["identity_dropout"] = float(model_cfg.get("identity_dropout", default_dropout))
        cfg["model"] = arch
        # make_train_scheduler reads the settings it knows (the prediction type comes from the model)
        cfg["scheduler"] = {k: v for k, v in sched_cfg.items() if not k.startswith("_")}
    return cfg


def build_model(cfg: dict[str, Any]) -> FRGDUNet:
    """The :class:`FRGDUNet` described by ``cfg["model"]`` (``"tiny": true`` starts from :func:`tiny_config`)."""
    m = dict(cfg["model"])
    tiny = m.pop("tiny", False)
    size = int(cfg["data"]["size"])
    if int(m.setdefault("sample_size", size)) != size:  # before tiny_config, whose default is 32
        raise InputError(f"model.sample_size {m['sample_size']} differs from data.size {size}")
    return FRGDUNet(**(tiny_config(**m) if tiny else m))


def training_embeddings(dataset) -> np.ndarray | None:
    """``(N, D)`` identity embeddings of a training set's faces, for :func:`prepare_identity_input`: the precomputed
    ones of a :class:`FacesDataset`, the identity vectors of :class:`SyntheticFaces`; ``None`` when they are encoded
    on the fly (nothing to compute statistics from before training)."""
    if isinstance(dataset, SyntheticFaces):
        return np.asarray(dataset.identity_vectors, np.float32)
    emb = getattr(dataset, "embeddings", None)
    if emb is None:
        return None
    rows = [emb.index[r.file] for r in dataset.records if r.file in emb.index]
    return emb.emb[rows] if len(rows) >= 2 else None


def build_dataset(cfg: dict[str, Any], split: str, identity_dim: int = 128, preview: int = 4):
    """Training (``split="train"``) or sample-preview (``"val"``: the first ``preview`` val identities) dataset."""
    d = cfg["data"]
    train_split = split == "train"
    dcfg = FacesDataConfig(
        size=int(d["size"]),
        flip=bool(d["flip"]) and train_split,
        max_items=d["max_items"] if train_split else None,
        max_identities=d["max_identities"] if train_split else preview,
        degradation=d["degradation"],
        fusion=cfg["fusion"] if train_split else {"p_fuse": 0.0},
        seed=int(cfg["train"]["seed"]) + (0 if train_split else 1),
    )
    if d["synthetic"]:
        n = int(d["synthetic_items"]) if train_split else preview
        return SyntheticFaces(n, int(d["synthetic_identities"]), dcfg, identity_dim)
    if not d["root"]:
        raise InputError("data.root is not set (the faces128 folder or a shard folder); or set data.synthetic")
    emb = Embeddings.load(d["embeddings"]) if train_split and d["embeddings"] else None
    backend = cfg["identity"]["backend"]
    if emb is not None and backend != "none":
        if emb.backend != backend or emb.emb.shape[1] != identity_dim:
            raise InputError(
                f"{d['embeddings']} holds {emb.backend} embeddings of dim {emb.emb.shape[1]}; the model needs "
                f"{backend} embeddings of dim {identity_dim} (identity.backend, model.identity_dim)"
            )
    return FacesDataset(d["root"], split, dcfg, embeddings=emb)


def min_snr_weight(alphas_cumprod: torch.Tensor, t: torch.Tensor, gamma: float, prediction_type: str) -> torch.Tensor:
    """Min-SNR-gamma loss weight ``(B,)`` for the regression target of ``prediction_type``."""
    abar = alphas_cumprod.to(t.device)[t].float()
    snr = abar / (1 - abar).clamp_min(1e-12)
    clipped = snr.clamp(max=gamma)
    if prediction_type == "v_prediction":
        return clipped / (snr + 1)
    return clipped / snr.clamp_min(1e-12)


def make_training_inputs(
    scheduler,
    x0: torch.Tensor,
    degraded: torch.Tensor,
    mask: torch.Tensor,
    noisy: torch.Tensor,
    noise: torch.Tensor,
    t: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_t, cond, target)`` of one batch (see :mod:`frgd.diffusion.training.fusion`).

    ``x0`` ``(B, 3, H, W)`` in ``[-1, 1]``; ``degraded`` ``(B, 3, H, W)`` in ``[0, 1]``; ``mask`` ``(B, 1, H, W)``
    (1 = generate); ``noisy`` ``(B,)`` bool (noisy fusion: the known content is ``x_t`` = ``q(x_t | x0)``);
    ``noise`` like ``x0``; ``t`` ``(B,)`` long. ``target`` is ``eps`` or ``v`` per ``scheduler.config.prediction_type``.
    """
    x_t = scheduler.add_noise(x0, noise, t)
    if scheduler.config.prediction_type == "epsilon":
        target = noise
    else:
        target = scheduler.get_velocity(x0, noise, t)
    known = torch.where(noisy.view(-1, 1, 1, 1).bool(), x_t, x0)
    cond = build_cond(degraded * 2 - 1, mask, known)
    return x_t, cond, target


@dataclass
class TrainResult:
    """Summary of a run."""

    run_dir: Path
    model_dir: Path | None
    step: int
    first_loss: float | None
    last_loss: float | None
    img_per_s: float | None
    resumed_from: int | None


# ------------------------------------------------------------------------------------------------ checkpoints


def _ckpt_dirs(run_dir: Path) -> list[Path]:
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(
        p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_") and (p / "state.json").is_file()
    )


def _np_state_to_json(state: tuple) -> list:
    name, keys, pos, has_gauss, cached = state
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def _np_state_from_json(s: list) -> tuple:
    return (s[0], np.array(s[1], dtype=np.uint32), s[2], s[3], s[4])


def _py_state_to_json(state: tuple) -> list:
    return [state[0], list(state[1]), state[2]]


def _py_state_from_json(s: list) -> tuple:
    return (s[0], tuple(s[1]), s[2])


# -------------------------------------------------------------------------------------------------- trainer


class Trainer:
    """Holds the objects of one training run; :meth:`run` trains (see the module docstring)."""

    def __init__(self, cfg: dict[str, Any], run_dir: str | Path) -> None:
        try:
            from accelerate import Accelerator
        except ImportError as err:
            raise InputError("training needs accelerate: pip install 'frgd-studio[train]'") from err
        from diffusers.optimization import get_scheduler
        from diffusers.training_utils import EMAModel

        from ...devices import resolve_device

        if cfg["train"]["steps"] is None and not cfg["train"]["time_budget_min"]:
            raise InputError(
                "a run needs an end: train.steps, or a time budget (train.time_budget_min, --time-budget-min)"
            )
        cfg = resolve_init(cfg)
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        tcfg = cfg["train"]
        device = resolve_device(tcfg["device"])
        if tcfg["num_threads"]:
            torch.set_num_threads(int(tcfg["num_threads"]))
        mp = tcfg["mixed_precision"]
        if mp == "auto":
            mp = "bf16" if device.type == "cuda" else "no"
        self.accelerator = Accelerator(mixed_precision=mp, cpu=device.type == "cpu")
        acc = self.accelerator
        self.seed = int(tcfg["seed"])
        random.seed(self.seed)
        np.random.seed(self.seed % 2**32)
        torch.manual_seed(self.seed)
        model = build_model(cfg)
        if tcfg["init_from"]:  # start from earlier (EMA) weights with a fresh optimizer
            init_weights(model, tcfg["init_from"])
            logger.info("initialised from %s", tcfg["init_from"])
        self.dataset = build_dataset(cfg, "train", model.config.identity_dim)
        prepare_identity_input(
            model, training_embeddings(self.dataset), bool(tcfg["identity_standardise"]), bool(tcfg["init_from"])
        )
        self.pred_type = model.config.prediction_type
        self.noise_scheduler = make_train_scheduler(cfg["scheduler"], prediction_type=self.pred_type)
        self.alphas_cumprod = self.noise_scheduler.alphas_cumprod.to(acc.device)
        self.id_loss = IdentityLossConfig.from_dict(cfg["identity_loss"])
        self.student = load_student(self.id_loss.student, acc.device) if self.id_loss.on else None
        o = cfg["optim"]
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=o["lr"], betas=tuple(o["betas"]), weight_decay=o["weight_decay"], eps=o["eps"]
        )
        budget = tcfg["time_budget_min"]
        self.time_budget_s = float(budget) * 60 if budget else None
        self.clock = time.perf_counter  # the time budget's clock (seconds; tests replace it)
        self.elapsed_before = 0.0  # training seconds of the run before this process started (a resumed run)
        self._lr_factor = 1.0  # the time schedule's share of the peak LR for the coming step
        if self.time_budget_s:  # the LR follows the clock (set before every step: _set_time_lr)
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _step: self._lr_factor)
        else:
            self.lr_scheduler = get_scheduler(
                o["lr_schedule"],
                optimizer,
                num_warmup_steps=int(o["warmup_steps"]),
                num_training_steps=int(tcfg["steps"]),
            )
        e = cfg["ema"]
        self.ema = EMAModel(
            [p.detach().clone() for p in model.parameters()],
            decay=e["decay"],
            use_ema_warmup=e["use_warmup"],
            inv_gamma=e["inv_gamma"],
            power=e["power"],
            update_after_step=e["update_after_step"],
        )
        self.model, self.optimizer = acc.prepare(model, optimizer)
        self.ema.to(acc.device)
        self.fusion_cfg = FusionConfig.from_dict(cfg["fusion"])
        self.batch_size = int(tcfg["batch_size"])
        self.gen = torch.Generator(device=acc.device)
        self.gen.manual_seed(self.seed * 1000 + acc.process_index + 1)
        self.step = 0
        self._t_run = self.clock()
        self._encoder = None
        self._preview: dict[str, Any] | None = None
        self._preview_no_encoder = False

    # -------------------------------------------------------------- helpers
    @property
    def unwrapped(self) -> FRGDUNet:
        return self.accelerator.unwrap_model(self.model)

    def identity_encoder(self):
        if self._encoder is None:
            from ...identity import get_identity_encoder

            self._encoder = get_identity_encoder(self.cfg["identity"]["backend"], self.accelerator.device)
        return self._encoder

    def embed(self, batch: dict[str, Any]) -> torch.Tensor | None:
        """``(B, D)`` identity embeddings of the batch (precomputed, or encoded from ``reference`` on the device);
        ``None`` with ``identity.backend = "none"`` (no identity conditioning: the null embedding only)."""
        if self.cfg["identity"]["backend"] == "none":
            return None
        if "identity" in batch:
            return batch["identity"].to(self.accelerator.device, torch.float32)
        with torch.no_grad():
            return self.identity_encoder().embed(batch["reference"].to(self.accelerator.device)).float()

    def loader(self) -> DataLoader:
        acc = self.accelerator
        sampler = EpochSampler(
            len(self.dataset),
            self.batch_size,
            seed=self.seed,
            position=self.step,
            process_index=acc.process_index,
            num_processes=acc.num_processes,
        )
        self.sampler = sampler
        nw = int(self.cfg["data"]["num_workers"])
        return DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            collate_fn=collate,
            num_workers=nw,
            pin_memory=acc.device.type == "cuda",
            persistent_workers=nw > 0,
            prefetch_factor=4 if nw > 0 else None,
        )

    # -------------------------------------------------------------- the time budget
    def training_elapsed(self) -> float:
        """Training seconds of the run so far (a resumed run's earlier ones included), the same number on every
        process: the main process's clock, broadcast (so all of them set the same LR and stop at the same step)."""
        t = self.elapsed_before + (self.clock() - self._t_run)
        acc = self.accelerator
        if acc.num_processes > 1:
            from accelerate.utils import broadcast

            t = float(broadcast(torch.tensor([t], dtype=torch.float64, device=acc.device), from_process=0).item())
        return t

    def time_lr_factor(self, elapsed_s: float) -> float:
        """Share of the peak LR for the coming step at ``elapsed_s`` of the time budget: a linear warm-up over
        ``optim.warmup_steps`` steps (by steps: a GPU's first steps are slow) times the cosine from 1 to
        ``optim.lr_min_ratio`` reached exactly at the end of the budget (:func:`.recipe.cosine_factor`)."""
        assert self.time_budget_s
        warm = int(self.cfg["optim"]["warmup_steps"])
        w = min(1.0, (self.step + 1) / warm) if warm > 0 else 1.0
        return w * R.cosine_factor(elapsed_s / self.time_budget_s, float(self.cfg["optim"]["lr_min_ratio"]))

    def _set_time_lr(self, elapsed_s: float) -> None:
        self._lr_factor = self.time_lr_factor(elapsed_s)
        for g in self.optimizer.param_groups:
            g["lr"] = g["initial_lr"] * self._lr_factor

    # -------------------------------------------------------------- one step
    def train_step(self, batch: dict[str, Any]) -> float:
        acc = self.accelerator
        dev = acc.device
        x0 = batch["target"].to(dev) * 2 - 1
        b = x0.shape[0]
        noise = torch.randn(x0.shape, generator=self.gen, device=dev)
        t = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (b,), generator=self.gen, device=dev)
        drop = self.unwrapped.sample_identity_drop(b, self.gen)
        mask = batch["mask"].to(dev)
        x_t, cond, target = make_training_inputs(
            self.noise_scheduler, x0, batch["degraded"].to(dev), mask, batch["fusion_noisy"].to(dev), noise, t
        )
        identity = self.embed(batch)
        with acc.autocast():
            pred = self.model(x_t, t, cond, identity, drop)
        err = (pred.float() - target.float()) ** 2
        w = fusion_loss_weights(mask, batch["fusion_checker"].to(dev), self.fusion_cfg)
        per_sample = (w * err).mean(dim=(1, 2, 3))
        gamma = self.cfg["train"]["min_snr_gamma"]
        if gamma:
            per_sample = per_sample * min_snr_weight(self.alphas_cumprod, t, float(gamma), self.pred_type)
        loss = per_sample.mean()
        if self.student is not None:  # .identity_loss, as in the rounds
            x0_hat = clean_estimate(self.alphas_cumprod, x_t, t, pred, self.pred_type)
            with acc.autocast():
                lid = identity_loss(self.student, x0_hat, x0, (t < self.id_loss.t_max) & ~drop.to(t.device).bool())
            loss = loss + float(self.id_loss.weight) * lid.mean()
        acc.backward(loss)
        clip = self.cfg["optim"]["grad_clip"]
        if clip:
            acc.clip_grad_norm_(self.model.parameters(), float(clip))
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.step(self.unwrapped.parameters())
        self.step += 1
        return float(acc.gather(loss.detach()[None]).mean().item())

    # -------------------------------------------------------------- checkpoints
    def save_checkpoint(self) -> Path:
        from safetensors.torch import save_file

        acc = self.accelerator
        acc.wait_for_everyone()
        final = self.run_dir / "checkpoints" / f"step_{self.step:07d}"
        tmp = final.with_name(final.name + ".tmp")
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            sd = {k: v.detach().contiguous().cpu() for k, v in self.unwrapped.state_dict().items()}
            save_file(sd, str(tmp / "model.safetensors"))
            ema_sd = self.ema.state_dict()
            shadow = ema_sd.pop("shadow_params")
            save_file(
                {f"shadow.{i:05d}": p.detach().contiguous().cpu() for i, p in enumerate(shadow)},
                str(tmp / "ema.safetensors"),
            )
            torch.save(
                {"optimizer": self.optimizer.state_dict(), "lr_scheduler": self.lr_scheduler.state_dict()},
                tmp / "training_state.pt",
            )
            state = {
                "step": self.step,
                "epoch": self.sampler.epoch_of(self.step) if hasattr(self, "sampler") else 0,
                "data_position": self.step,
                "ema": {k: v for k, v in ema_sd.items() if isinstance(v, (int, float, bool)) or v is None},
                "numpy_rng": _np_state_to_json(np.random.get_state()),
                "python_rng": _py_state_to_json(random.getstate()),
                "num_processes": acc.num_processes,
                "elapsed_s": self.elapsed_before + (self.clock() - self._t_run),  # the time budget's clock
            }
            (tmp / "state.json").write_text(json.dumps(state, indent=1) + "\n")
        acc.wait_for_everyone()
        # per-process RNG (torch global CPU/CUDA and the noise generator)
        if acc.is_main_process or acc.num_processes > 1:
            rng = {"torch_cpu": torch.get_rng_state(), "noise_gen": self.gen.get_state()}
            if torch.cuda.is_available():
                rng["torch_cuda"] = torch.cuda.get_rng_state(acc.device)
            torch.save(rng, tmp / f"rng_{acc.process_index}.pt")
        acc.wait_for_everyone()
        if acc.is_main_process:
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
            keep = int(self.cfg["train"]["keep_checkpoints"])
            for old in _ckpt_dirs(self.run_dir)[:-keep] if keep > 0 else []:
                shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()
        logger.info("checkpoint %s", final)
        return final

    def load_checkpoint(self, ckpt: Path) -> None:
        from safetensors.torch import load_file

        acc = self.accelerator
        state = json.loads((ckpt / "state.json").read_text())
        if state.get("num_processes", 1) != acc.num_processes:
            raise InputError(
                f"{ckpt} was written by {state['num_processes']} processes; resume with the same number "
                f"(now {acc.num_processes}) for an exact resume"
            )
        self.unwrapped.load_state_dict(load_file(str(ckpt / "model.safetensors"), device=str(acc.device)))
        shadow = load_file(str(ckpt / "ema.safetensors"))
        ema_sd = dict(state["ema"])
        ema_sd["shadow_params"] = [shadow[k] for k in sorted(shadow)]
        self.ema.load_state_dict(ema_sd)
        self.ema.to(acc.device)
        ts = torch.load(ckpt / "training_state.pt", map_location="cpu", weights_only=True)
        self.optimizer.load_state_dict(ts["optimizer"])
        self.lr_scheduler.load_state_dict(ts["lr_scheduler"])
        np.random.set_state(_np_state_from_json(state["numpy_rng"]))
        random.setstate(_py_state_from_json(state["python_rng"]))
        rng = torch.load(ckpt / f"rng_{acc.process_index}.pt", map_location="cpu", weights_only=True)
        torch.set_rng_state(rng["torch_cpu"])
        self.gen.set_state(rng["noise_gen"])
        if "torch_cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state(rng["torch_cuda"], acc.device)
        self.step = int(state["step"])
        self.elapsed_before = float(state.get("elapsed_s", 0.0))
        logger.info("resumed from %s (step %d, %.0f s trained)", ckpt, self.step, self.elapsed_before)

    # -------------------------------------------------------------- samples
    def _preview_items(self) -> dict[str, Any] | None:
        """The collated val faces of the sample grids (read once per run; ``None`` without val data)."""
        if self._preview is None:
            n = int(self.cfg["train"]["sample_count"])
            try:
                val = build_dataset(self.cfg, "val", self.unwrapped.config.identity_dim, preview=n)
            except InputError as err:
                logger.warning("no sample grid: %s", err)
                self._preview = {}
                return None
            if isinstance(val, FacesDataset):  # one face per identity
                picks = [idx[0] for idx in val.by_identity.values()][:n]
            else:
                picks = list(range(min(n, len(val))))
            self._preview = collate([val[(i, 0)] for i in picks])
        return self._preview or None

    def _preview_identity(self, items: dict[str, Any]) -> torch.Tensor | None:
        """The preview faces' reference embeddings, or ``None`` (null identity) when no encoder can be loaded here
        (e.g. a training machine without the dlib weights): previews must never stop a run."""
        from ...errors import MissingWeightsError

        if self._preview_no_encoder:
            return None
        try:
            return self.embed(items)
        except (MissingWeightsError, ImportError, InputError) as err:
            logger.warning("sample grids without identity: %s", err)
            self._preview_no_encoder = True
            return None

    @torch.no_grad()
    def save_samples(self) -> Path | None:
        """Sample a few fixed val faces with the EMA weights through the product sampler (:class:`FRGDPipeline`, same
        scheduler and steps a user gets; no guidance, plain conditional model); PNG grid (rows: degraded | sample |
        target)."""
        import cv2

        from ..sampling.guidance import GuidanceWeights
        from ..sampling.pipeline import FRGDPipeline

        acc = self.accelerator
        if not acc.is_main_process:
            return None
        tcfg = self.cfg["train"]
        items = self._preview_items()
        if items is None:
            return None
        dev = acc.device
        model = self.unwrapped
        self.ema.store(model.parameters())
        self.ema.copy_to(model.parameters())
        was_training = model.training
        try:
            identity = self._preview_identity(items)
            deg = items["degraded"].to(dev)
            pipe = FRGDPipeline(model, self.noise_scheduler, identity_backend="none", device=dev, name="preview")
            with acc.autocast():
                out = pipe(
                    deg,
                    references=identity,
                    reference_per_sample=identity is not None,
                    num_samples=deg.shape[0],
                    seeds=1234,
                    steps=int(tcfg["sample_steps"]),
                    weights=GuidanceWeights(identity=0.0, content=0.0, cfg=0.0 if identity is None else 1.0),
                )
        finally:
            self.ema.restore(model.parameters())
            model.train(was_training)
        sample = out.images.to(dev)
        rows = torch.cat([deg, sample, items["target"].to(dev)], dim=2)  # (B, 3, 3S, S)
        grid = torch.cat(list(rows), dim=2).permute(1, 2, 0).float().cpu().numpy()
        out_path = self.run_dir / "samples" / f"step_{self.step:07d}.png"
        out_path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out_path), np.round(grid[:, :, ::-1] * 255).astype(np.uint8))
        return out_path

    # -------------------------------------------------------------- loop
    def run(
        self,
        resume: bool = False,
        max_steps: int | None = None,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
    ) -> TrainResult:
        acc = self.accelerator
        tcfg = self.cfg["train"]
        resumed_from = None
        if resume:
            ckpts = _ckpt_dirs(self.run_dir)
            if not ckpts:
                raise InputError(f"--resume: no checkpoint under {self.run_dir / 'checkpoints'}")
            self.load_checkpoint(ckpts[-1])
            resumed_from = self.step
        if acc.is_main_process:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.json").write_text(json.dumps(self.cfg, indent=2) + "\n")
        total = math.inf if tcfg["steps"] is None else int(tcfg["steps"])  # None: the time budget alone
        stop = min(total, int(max_steps)) if max_steps else total
        budget_s = self.time_budget_s
        log_every = max(1, int(tcfg["log_every"]))
        ckpt_every = int(tcfg["checkpoint_every"])
        sample_every = int(tcfg["sample_every"])
        log_path = self.run_dir / "train_log.jsonl"
        max_s = float(tcfg["max_minutes"]) * 60 if tcfg["max_minutes"] else None
        self.model.train()
        first_loss = last_loss = ips = None
        losses: list[float] = []
        t_run = time.perf_counter()
        self._t_run = self.clock()
        t_log, n_log = time.perf_counter(), 0
        logger.info(
            "training %s: %d params, %d faces, batch %d x %d processes, %s, steps %d -> %s%s",
            self.cfg["name"],
            sum(p.numel() for p in self.unwrapped.parameters()),
            len(self.dataset),
            self.batch_size,
            acc.num_processes,
            acc.device,
            self.step,
            stop,
            f", {budget_s / 60:g} min by the clock" if budget_s else "",
        )
        if self.step < stop and not (budget_s and self.training_elapsed() >= budget_s):
            for batch in self.loader():
                if cancel is not None and cancel.cancelled:
                    if self.step > (resumed_from or 0):
                        self.save_checkpoint()  # resumable with --resume
                    check_cancel(cancel)
                if budget_s:
                    elapsed = self.training_elapsed()
                    if elapsed >= budget_s:
                        logger.info("time budget of %g min spent at step %d", budget_s / 60, self.step)
                        break
                    self._set_time_lr(elapsed)
                loss = self.train_step(batch)
                if not math.isfinite(loss):
                    raise FloatingPointError(f"loss is {loss} at step {self.step}")
                losses.append(loss)
                n_log += self.batch_size * acc.num_processes
                if first_loss is None:
                    first_loss = loss
                if self.step % log_every == 0 or self.step == stop:
                    dt = time.perf_counter() - t_log
                    ips = n_log / dt if dt > 0 else None
                    last_loss = float(np.mean(losses))
                    row = {
                        "step": self.step,
                        "epoch": self.sampler.epoch_of(self.step - 1),
                        "loss": last_loss,
                        "lr": self.lr_scheduler.get_last_lr()[0],
                        "img_per_s": ips,
                        "elapsed_s": time.perf_counter() - t_run,
                    }
                    if acc.is_main_process:
                        with log_path.open("a") as f:
                            f.write(json.dumps(row) + "\n")
                    logger.info("step %d loss %.4f %.1f img/s", self.step, last_loss, ips or 0.0)
                    losses, t_log, n_log = [], time.perf_counter(), 0
                if budget_s:  # progress in seconds of the budget
                    done_s = min(int(elapsed), int(budget_s))
                    report(progress, done_s, int(budget_s), f"step {self.step} loss {loss:.4f}")
                else:
                    report(progress, self.step, stop, f"loss {loss:.4f}")
                t_extra = time.perf_counter()
                if ckpt_every and self.step % ckpt_every == 0 and self.step < stop:
                    self.save_checkpoint()
                if sample_every and self.step % sample_every == 0:
                    self.save_samples()
                t_log += time.perf_counter() - t_extra  # img/s counts training time only
                if self.step >= stop:
                    break
                if max_s and self.step % log_every == 0 and self._out_of_time(t_run, max_s):
                    logger.warning("train.max_minutes reached at step %d; stopping", self.step)
                    break
            self.save_checkpoint()
            if sample_every and self.step % sample_every != 0:
                self.save_samples()
        model_dir = self.export(self.run_dir / "model") if acc.is_main_process else None
        return TrainResult(self.run_dir, model_dir, self.step, first_loss, last_loss, ips, resumed_from)

    @property
    def identity_backend(self) -> str:
        """Backend recorded in ``identity.json``: ``synthetic`` for synthetic data (random identity vectors)."""
        return "synthetic" if self.cfg["data"]["synthetic"] else str(self.cfg["identity"]["backend"])

    def _out_of_time(self, t_run: float, max_s: float) -> bool:
        """All processes agree (max over processes) whether the wall-clock budget is spent."""
        over = torch.tensor([float(time.perf_counter() - t_run > max_s)], device=self.accelerator.device)
        if self.accelerator.num_processes > 1:
            over = self.accelerator.gather(over).max()
        return bool(over.item())

    def export(self, out_dir: Path) -> Path:
        """Write the EMA weights as a model directory (``train.export_dtype``: fp32, or fp16 for a half-size file)."""
        model = self.unwrapped
        self.ema.store(model.parameters())
        self.ema.copy_to(model.parameters())
        try:
            out = copy.deepcopy(model).half() if self.cfg["train"]["export_dtype"] == "fp16" else model
            save_model_dir(
                out_dir,
                out,
                self.noise_scheduler,
                IdentityInfo(backend=self.identity_backend, dim=int(model.config.identity_dim)),
            )
        finally:
            self.ema.restore(model.parameters())
        return out_dir


def train(
    config: str | Path | dict[str, Any],
    output_dir: str | Path | None = None,
    resume: bool = False,
    max_steps: int | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> TrainResult:
    """Train FRGD from a config (file or dict); ``output_dir`` defaults to ``runs/<name>``."""
    cfg = load_config(config)
    run_dir = Path(output_dir) if output_dir else Path("runs") / cfg["name"]
    trainer = Trainer(cfg, run_dir)
    return trainer.run(resume=resume, max_steps=max_steps, progress=progress, cancel=cancel)
