"""The FRGD model bundle: the conditioning layout (:func:`build_cond`), noise schedules and the model directory.

A model directory holds::

    config.json                            FRGDUNet config (diffusers ConfigMixin)
    diffusion_pytorch_model.safetensors    FRGDUNet weights (EMA weights for a released model)
    scheduler/scheduler_config.json        DDPMScheduler config (1000 steps, linear or squaredcos_cap_v2)
    identity.json                          {"backend": "dlib", "dim": 128}: the encoder whose embeddings condition it

:func:`save_model_dir` writes one, :func:`load_model_dir` reads it back (``MissingWeightsError`` when absent).
The sampler can build any diffusers scheduler from the same config (``DDIMScheduler.from_config(sched.config)``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler

from ..archs.frgd_unet_arch import COND_CHANNELS, FRGDUNet
from ..errors import MissingWeightsError

logger = logging.getLogger(__name__)

SCHEDULER_SUBDIR = "scheduler"
IDENTITY_FILE = "identity.json"
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"
"""The weights file of a model folder (diffusers' ``save_pretrained`` name)."""
BETA_SCHEDULES = ("linear", "squaredcos_cap_v2")


@dataclass(frozen=True)
class IdentityInfo:
    """Which identity encoder produced the embeddings the model was trained on."""

    backend: str = "dlib"
    dim: int = 128


@dataclass
class FRGDModelBundle:
    """A loaded model directory."""

    model: FRGDUNet
    scheduler: DDPMScheduler
    identity: IdentityInfo
    path: Path


def make_train_scheduler(cfg: dict[str, Any] | None = None, **overrides: Any) -> DDPMScheduler:
    """DDPM training scheduler from a config dict (keys: ``num_train_timesteps`` (1000), ``beta_schedule``
    (``squaredcos_cap_v2`` or ``linear``), ``prediction_type`` (``v_prediction``/``epsilon``), ``beta_start``,
    ``beta_end`` (linear only), ``clip_sample`` (True: x0 clipped to [-1, 1] when stepping),
    ``rescale_betas_zero_snr`` (False)); unknown keys are ignored."""
    c = {**(cfg or {}), **overrides}
    beta_schedule = c.get("beta_schedule", "squaredcos_cap_v2")
    if beta_schedule not in BETA_SCHEDULES:
        raise ValueError(f"beta_schedule must be one of {BETA_SCHEDULES}, got {beta_schedule!r}")
    prediction_type = c.get("prediction_type", "v_prediction")
    if prediction_type not in ("v_prediction", "epsilon"):
        raise ValueError(f"prediction_type must be v_prediction or epsilon, got {prediction_type!r}")
    return DDPMScheduler(
        num_train_timesteps=int(c.get("num_train_timesteps", 1000)),
        beta_schedule=beta_schedule,
        beta_start=float(c.get("beta_start", 0.0001)),
        beta_end=float(c.get("beta_end", 0.02)),
        prediction_type=prediction_type,
        clip_sample=bool(c.get("clip_sample", True)),
        rescale_betas_zero_snr=bool(c.get("rescale_betas_zero_snr", False)),
        timestep_spacing="trailing" if c.get("rescale_betas_zero_snr", False) else "leading",
    )


def save_scheduler(scheduler: DDPMScheduler, model_dir: str | Path) -> Path:
    """Write ``model_dir/scheduler/scheduler_config.json``; returns the folder."""
    out = Path(model_dir) / SCHEDULER_SUBDIR
    scheduler.save_pretrained(out)
    return out


def load_scheduler(model_dir: str | Path) -> DDPMScheduler:
    """Read the DDPM scheduler of a model directory."""
    path = Path(model_dir) / SCHEDULER_SUBDIR
    if not (path / "scheduler_config.json").is_file():
        raise MissingWeightsError(
            f"FRGD scheduler config missing: expected {path / 'scheduler_config.json'}; "
            "the model folder is incomplete (re-export it with `frgd train` or `frgd weights import`)"
        )
    return DDPMScheduler.from_pretrained(path)


def save_model_dir(
    model_dir: str | Path, model: FRGDUNet, scheduler: DDPMScheduler, identity: IdentityInfo | None = None
) -> Path:
    """Write a complete model directory (config, safetensors weights, scheduler, identity.json)."""
    out = Path(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    if scheduler.config.prediction_type != model.config.prediction_type:
        raise ValueError(
            f"scheduler prediction_type {scheduler.config.prediction_type!r} != "
            f"model prediction_type {model.config.prediction_type!r}"
        )
    model.save_pretrained(out, safe_serialization=True)
    save_scheduler(scheduler, out)
    ident = identity or IdentityInfo(dim=int(model.config.identity_dim))
    if ident.dim != model.config.identity_dim:
        raise ValueError(f"identity dim {ident.dim} != model identity_dim {model.config.identity_dim}")
    (out / IDENTITY_FILE).write_text(json.dumps(asdict(ident), indent=2) + "\n")
    logger.info("saved FRGD model to %s", out)
    return out


def missing_model_message(path: str | Path) -> str:
    """The actionable "no FRGD model in ``path``" text: the files expected and the real commands that make or
    install one (``frgd train`` from scratch with the shipped architecture's preset, ``frgd weights import``)."""
    return (
        f"FRGD model weights not found: expected {Path(path)}/config.json and {WEIGHTS_FILE}; install a model folder "
        "with `frgd weights import DIR --name frgd-128`, or train one with "
        "`frgd train --config round_frgd128 --data FACES_DIR --time-budget-min 600 --output runs/frgd128` and import "
        "RUN/model"
    )


def is_model_dir(path: str | Path) -> bool:
    """True when ``path`` holds an FRGD model folder's config and weights (nothing is loaded)."""
    p = Path(path)
    return (p / "config.json").is_file() and (p / WEIGHTS_FILE).is_file()


def read_identity_info(model_dir: str | Path, default_dim: int = 128) -> IdentityInfo:
    """The identity encoder a model folder was trained with (its ``identity.json``; dlib when absent or unreadable):
    the one parse of ``identity.json`` (the CLI, the pipelines and the editor's reference scores)."""
    ident_path = Path(model_dir) / IDENTITY_FILE
    try:
        raw = json.loads(ident_path.read_text())
        return IdentityInfo(backend=str(raw.get("backend", "dlib")), dim=int(raw.get("dim", default_dim)))
    except FileNotFoundError:
        logger.warning("%s has no %s; assuming the dlib backend", model_dir, IDENTITY_FILE)
    except (OSError, ValueError, TypeError, AttributeError) as err:
        logger.warning("%s: unreadable %s (%s); assuming the dlib backend", model_dir, IDENTITY_FILE, err)
    return IdentityInfo(dim=default_dim)


def load_model_dir(
    model_dir: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> FRGDModelBundle:
    """Load a model directory written by :func:`save_model_dir` (model in eval mode on ``device``)."""
    path = Path(model_dir)
    weights = path / WEIGHTS_FILE
    if not (path / "config.json").is_file() or not weights.is_file():
        raise MissingWeightsError(missing_model_message(path))
    model = FRGDUNet.from_pretrained(path, use_safetensors=True, torch_dtype=dtype)
    model = model.to(device=device).eval()
    scheduler = load_scheduler(path)
    identity = read_identity_info(path, default_dim=int(model.config.identity_dim))
    if scheduler.config.prediction_type != model.config.prediction_type:
        raise MissingWeightsError(
            f"{path}: scheduler prediction_type {scheduler.config.prediction_type!r} does not match the model's "
            f"{model.config.prediction_type!r}; the folder is corrupt"
        )
    return FRGDModelBundle(model=model, scheduler=scheduler, identity=identity, path=path)


def build_cond(
    degraded: torch.Tensor,
    mask: torch.Tensor | None = None,
    known: torch.Tensor | None = None,
    size: tuple[int, int] | None = None,
    value_range: str = "[-1,1]",
) -> torch.Tensor:
    """Assemble ``cond`` ``(B, 7, H, W)``.

    ``degraded`` ``(B, 3, h, w)`` any size (bicubic-resized to ``size``, default ``known``'s/``mask``'s size or its
    own); ``mask`` ``(B, 1, H, W)`` (1 = generate; ``None`` = all ones); ``known`` ``(B, 3, H, W)`` (``None`` = zeros).
    ``value_range`` says whether ``degraded``/``known`` are in ``"[-1,1]"`` or the public ``"[0,1]"``.
    """
    if value_range not in ("[-1,1]", "[0,1]"):
        raise ValueError("value_range must be '[-1,1]' or '[0,1]'")
    b = degraded.shape[0]
    if size is None:
        ref = known if known is not None else mask if mask is not None else degraded
        size = (int(ref.shape[-2]), int(ref.shape[-1]))
    deg = degraded.float()
    if value_range == "[0,1]":
        deg = deg * 2 - 1
    if tuple(deg.shape[-2:]) != tuple(size):
        deg = F.interpolate(deg, size=size, mode="bicubic", align_corners=False)
    deg = deg.clamp(-1, 1)
    if mask is None:
        mask = torch.ones(b, 1, *size, device=deg.device)
    mask = mask.to(deg.device, deg.dtype)
    if known is None:
        kn = torch.zeros(b, 3, *size, device=deg.device)
    else:
        kn = known.to(deg.device, deg.dtype)
        if value_range == "[0,1]":
            kn = kn * 2 - 1
    cond = torch.cat([deg, mask, kn * (1 - mask)], dim=1)
    assert cond.shape[1] == COND_CHANNELS
    return cond
