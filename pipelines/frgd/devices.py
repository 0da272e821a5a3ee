"""Device selection: ``auto`` picks CUDA, then MPS, then CPU."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import InputError

if TYPE_CHECKING:  # torch is imported lazily so `frgd --help` and CLI parsing stay fast
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
"""The device names of the CLI and the editor's Device menu (``cuda:N`` picks one GPU)."""
DEVICE_HELP = "compute device: auto, cpu, cuda, cuda:N (one GPU of several) or mps (default auto)"


def device_arg(text: str) -> str:
    """argparse ``type`` for ``--device``: one of :data:`DEVICE_CHOICES` or ``cuda:N`` (checked without torch)."""
    import argparse

    spec = text.strip().lower()
    if spec in DEVICE_CHOICES or (spec.startswith("cuda:") and spec[5:].isdigit()):
        return spec
    raise argparse.ArgumentTypeError(f"unknown device {text!r}; choose {', '.join(DEVICE_CHOICES)} or cuda:N")


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """Turn ``auto|cpu|cuda|cuda:N|mps`` into a usable :class:`torch.device` or raise :class:`InputError`."""
    import torch

    if isinstance(spec, torch.device):
        return spec
    spec = (spec or "auto").lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"device {spec!r} requested but CUDA is not available; use --device cpu")
        return torch.device(spec)
    if spec == "mps":
        if not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
            raise InputError("device 'mps' requested but MPS is not available; use --device cpu")
        return torch.device("mps")
    if spec == "cpu":
        return torch.device("cpu")
    raise InputError(f"unknown device {spec!r}; choose one of {', '.join(DEVICE_CHOICES)}")


def describe_device(device: torch.device) -> str:
    """Human-readable device name for status bars and benchmark JSON."""
    import torch

    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "Apple MPS"
    return f"CPU ({torch.get_num_threads()} threads)"


def is_oom(err: BaseException) -> bool:
    """True for a GPU out-of-memory error (CUDA or MPS)."""
    import torch

    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()
