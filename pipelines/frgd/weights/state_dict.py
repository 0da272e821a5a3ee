"""State dicts and model folders: :func:`load_state_dict` (safetensors, or ``torch.load(weights_only=True)``) and
``config.json`` + ``model.safetensors`` folders (:func:`save_pretrained`, :func:`load_config`, :func:`load_pretrained`).
torch is imported on use."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import FRGDError, InputError, MissingWeightsError
from ..io.files import atomic_write_bytes, normal_mode

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
_STATE_KEYS = ("params_ema", "params", "state_dict", "model", "net", "g_ema")


def load_state_dict(
    path: str | os.PathLike[str], map_location: Any = "cpu", key: str | None = None
) -> dict[str, torch.Tensor]:
    """Load a state dict from ``.safetensors`` or ``.pth/.pt/.ckpt/.bin`` (``torch.load(weights_only=True)``).

    ``key`` selects a nested dict (e.g. ``"params_ema"``); when absent (or ``key`` is None and the file is a
    checkpoint wrapper), the first of ``params_ema, params, state_dict, model, net, g_ema`` that exists is used.
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise MissingWeightsError(f"weights file not found: {p}")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(p), device=str(map_location) if map_location is not None else "cpu")
        else:
            obj = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:  # torch's weights_only refusal: several lines advising an unsafe load
        raise FRGDError(
            f"cannot read weights {p}: refused, it holds Python objects other than tensors (loading them could run "
            "code); use a state-dict or safetensors file from a trusted source"
        ) from err
    except Exception as err:  # noqa: BLE001 - corrupt files raise many types
        reason = " ".join(str(err).split())[:300]
        raise FRGDError(f"cannot read weights {p}: {type(err).__name__}: {reason}") from err
    if not isinstance(obj, dict):
        raise FRGDError(f"{p} does not hold a state dict (got {type(obj).__name__})")
    if key is not None and key in obj and isinstance(obj[key], dict):
        obj = obj[key]
    elif key is not None or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        for k in _STATE_KEYS:
            if k in obj and isinstance(obj[k], dict):
                if key is not None:
                    logger.info("%s: key %r not found, using %r", p, key, k)
                obj = obj[k]
                break
        else:
            if key is not None:
                raise FRGDError(f"{p} has no {key!r} state dict (keys: {', '.join(map(str, list(obj)[:10]))})")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise FRGDError(f"{p} holds no tensors")
    return tensors


def save_pretrained(
    directory: str | os.PathLike[str], model: nn.Module | dict[str, torch.Tensor], config: dict[str, Any],
    dtype: torch.dtype | None = None,
) -> Path:  # fmt: skip
    """Write ``config.json`` + ``model.safetensors`` (float tensors cast to ``dtype`` if given); return the folder."""
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    sd = model if isinstance(model, dict) else model.state_dict()
    tensors = {}
    for k, v in sd.items():
        t = v.detach().cpu()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        tensors[k] = t.clone().contiguous()
    from .. import __version__

    fd, tmp = tempfile.mkstemp(prefix=".model.", suffix=".safetensors", dir=d)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"format": "pt", "frgd_version": __version__})
        normal_mode(tmp)
        os.replace(tmp, d / WEIGHTS_NAME)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    atomic_write_bytes(d / CONFIG_NAME, (json.dumps(config, indent=2, sort_keys=True, default=str) + "\n").encode())
    return d


def load_config(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """``config.json`` of a model folder; :class:`MissingWeightsError` when absent."""
    p = Path(directory) / CONFIG_NAME
    if not p.is_file():
        raise MissingWeightsError(f"model config not found: {p} (the model folder is incomplete or missing)")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise FRGDError(f"cannot read model config {p}: {err}") from err
    if not isinstance(data, dict):
        raise FRGDError(f"model config {p} is not a JSON object")
    return data


def build_from_config(
    config: dict[str, Any], cls: Callable[..., nn.Module], arch: str, keys: tuple[str, ...], what: str
) -> nn.Module:
    """``cls(**...)`` from a ``config.json`` dict: its ``keys`` (those present; extra keys such as training metadata
    are ignored), after checking that it names architecture ``arch`` (or none); :class:`InputError` says which
    ``what`` config named which other one."""
    name = config.get("arch", arch)
    if name != arch:
        raise InputError(f"{what} config names architecture {name!r}, expected {arch!r}")
    return cls(**{k: config[k] for k in keys if k in config})


def load_pretrained(
    directory: str | os.PathLike[str], build: Callable[[dict[str, Any]], nn.Module], device: Any = "cpu",
    strict: bool = True,
) -> nn.Module:  # fmt: skip
    """Rebuild a model with ``build(config)`` and load ``model.safetensors``; returns it in eval mode on ``device``."""
    d = Path(directory)
    cfg = load_config(d)
    model = build(cfg)
    sd = load_state_dict(d / WEIGHTS_NAME)
    try:
        result = model.load_state_dict(sd, strict=strict)
    except RuntimeError as err:
        raise FRGDError(
            f"weights in {d} do not fit the model built from its config: {str(err).splitlines()[0]}"
        ) from err
    if not strict and (result.missing_keys or result.unexpected_keys):
        logger.warning(
            "%s: missing keys %s, unexpected keys %s", d, result.missing_keys[:5], result.unexpected_keys[:5]
        )
    return model.to(device).eval()
