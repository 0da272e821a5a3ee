"""Wall time and peak memory of the background upscale of an 8-bit photo (`frgd.restore.upscale_photo`: the background
of ``frgd enhance`` / ``frgd restore`` and of the editor's Result), against the float32 path it replaced.

Each run is a child process (imports, a seeded smooth ``--size`` photo: ``measure_resample_wait.smooth_photo``, one
upscale); the two paths run in turn, ``--pairs`` times, after one warm-up each. ``uint8``: today's ``upscale_photo``
(tiles rounded into an 8-bit buffer as they are made). ``float32``: the same pipeline into a float32 buffer converted
with ``frgd.tensor.tensor_to_image`` afterwards (``upscale_photo`` before). Both must give the same image (checked: a
digest of the output).

    python scripts/measure_background_upscale.py --out docs/results/background_upscale.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

logger = logging.getLogger("measure_background_upscale")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure_resample_wait import smooth_photo  # noqa: E402

PATHS = ("uint8", "float32")


def child(path: str, size: tuple[int, int], model: str, scale: int, threads: int) -> None:
    """Upscale the photo along ``path`` and print the output's SHA-256 (one child process)."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    photo = smooth_photo(size)
    if path == "uint8":
        from frgd.restore import upscale_photo

        out, _ = upscale_photo(photo, scale, model)
    else:
        from frgd.sr.upscale import UpscalePipeline
        from frgd.tensor import image_to_tensor, tensor_to_image

        out = tensor_to_image(UpscalePipeline(model, scale)(image_to_tensor(photo), tile="auto").image, np.uint8)
    sys.stdout.write(hashlib.sha256(np.ascontiguousarray(out).tobytes()).hexdigest() + "\n")


def run_child(path: str, args: argparse.Namespace) -> dict:
    """One child run: wall seconds, peak RSS (MiB, the kernel's ``ru_maxrss``) and the output digest."""
    cmd = [sys.executable, __file__, "--child", path, "--size", args.size, "--model", args.model,
           "--scale", str(args.scale), "--threads", str(args.threads)]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    digest = proc.stdout.read().decode().strip() if proc.stdout else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{path} run failed ({proc.returncode})")
    return {"path": path, "wall_s": round(wall, 2), "peak_mib": round(usage.ru_maxrss / 1024, 1), "sha256": digest}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="4000x3000", help="photo size WxH")
    ap.add_argument("--model", default="lanczos")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--out")
    ap.add_argument("--child", choices=PATHS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    if args.child:
        child(args.child, size, args.model, args.scale, args.threads)
        return 0
    if not args.out:
        ap.error("--out is required")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for path in PATHS:
        run_child(path, args)  # warm-up (file cache, imports)
    rows = []
    for _ in range(args.pairs):
        for path in PATHS:
            rows.append(run_child(path, args))
            logger.info("%s", rows[-1])
    if len({r["sha256"] for r in rows}) != 1:
        raise SystemExit("the two paths made different images")
    median = {p: {k: round(statistics.median(r[k] for r in rows if r["path"] == p), 2) for k in ("wall_s", "peak_mib")}
              for p in PATHS}  # fmt: skip
    ratios = [a["wall_s"] / b["wall_s"] for a, b in zip(rows[::2], rows[1::2])]
    command = "python scripts/measure_background_upscale.py " + " ".join(sys.argv[1:] if argv is None else argv)
    data = {"command": command, "photo_wh": list(size), "model": args.model, "scale": args.scale,
            "threads": args.threads, "rows": rows, "median": median,
            "wall_ratio_uint8_over_float32": {"median": round(statistics.median(ratios), 3),
                                              "min": round(min(ratios), 3), "max": round(max(ratios), 3)}}  # fmt: skip
    Path(args.out).write_text(json.dumps(data, indent=1) + "\n")
    logger.info("%s", json.dumps({"median": median, "ratio": data["wall_ratio_uint8_over_float32"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
