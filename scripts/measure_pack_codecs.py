"""What the training pack's codec costs the training targets: bytes, PSNR and fine detail per quality.

The round's pack stores the training faces as WebP at the highest quality that fits the upload
(``frgd.diffusion.training.pack``); every step down makes room (for a carried compile cache, say) and loses some of
the targets' detail. This measures, on every ``--every``-th face of ``--faces/train`` (the source JPEGs), for each
WebP quality as the pack encodes it (OpenCV, :func:`~frgd.diffusion.training.pack.encode_webp`) and, for comparison,
AVIF through Pillow where Pillow has it (the GPU machine's Pillow is not known to have it, so the pack does not use
it): mean bytes per face, the pack's projected face bytes (``bytes x`` the train count), PSNR (RGB) against the
source and :func:`~frgd.metrics.detail.detail_score` (the fine detail kept, 1 = all). Research data is read, nothing
of it is written but the figures.

    python scripts/measure_pack_codecs.py --faces ../shared/data/faces128 --json-out docs/results/pack_codecs.json
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import time
from pathlib import Path

import cv2
import numpy as np

from frgd.diffusion.training.pack import QUALITIES, encode_webp
from frgd.metrics import detail_score, psnr

logger = logging.getLogger("measure_pack_codecs")

EXTRA_WEBP = (45, 40, 35)
"""WebP qualities below the pack's floor, measured to see what a lower floor would cost."""
AVIF_QUALITIES = (40, 50, 60, 70)


def decode(buf: bytes) -> np.ndarray:
    """RGB uint8 of an encoded image (OpenCV, as the round's loader)."""
    return cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]


def avif_codec():
    """``(encode, decode)`` through Pillow's AVIF plugin, or ``None`` where Pillow has none."""
    from PIL import Image, features

    if not features.check("avif"):
        return None

    def enc(img: np.ndarray, q: int) -> bytes:
        out = io.BytesIO()
        Image.fromarray(img).save(out, "AVIF", quality=q, speed=4)
        return out.getvalue()

    def dec(buf: bytes) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(buf)).convert("RGB"))

    return enc, dec


def row(name: str, imgs: list[np.ndarray], enc, dec, n_train: int) -> dict:
    t = time.perf_counter()
    bufs = [enc(x) for x in imgs]
    enc_ms = (time.perf_counter() - t) / len(imgs) * 1e3
    outs = [dec(b) for b in bufs]
    per_face = float(np.mean([len(b) for b in bufs]))
    res = {
        "codec": name,
        "bytes_per_face": per_face,
        "train_faces_mib": per_face * n_train / 2**20,
        "psnr_rgb": float(np.mean([psnr(o, x) for o, x in zip(outs, imgs, strict=True)])),
        "detail": detail_score(outs, imgs),
        "encode_ms": enc_ms,
    }
    logger.info(
        "%-14s %6.0f B/face  %5.2f MiB  PSNR %5.2f dB  detail %.3f",
        name, per_face, res["train_faces_mib"], res["psnr_rgb"], res["detail"],
    )  # fmt: skip
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faces", required=True, help="the faces128 folder (its train/ holds the source JPEGs)")
    ap.add_argument("--every", type=int, default=30, help="measure every N-th training face (default 30: 600 faces)")
    ap.add_argument("--json-out", help="write the rows here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    files = sorted((Path(args.faces) / "train").glob("*.jpg"))
    if not files:
        ap.error(f"no training faces (*.jpg) in {Path(args.faces) / 'train'}")
    picked = files[:: max(1, args.every)]
    imgs = [cv2.imread(str(f), cv2.IMREAD_COLOR)[:, :, ::-1].copy() for f in picked]
    rows = [
        row(f"webp q{q}", imgs, lambda x, q=q: encode_webp(x, q), decode, len(files))
        for q in sorted({*QUALITIES, *EXTRA_WEBP}, reverse=True)
    ]
    avif = avif_codec()
    if avif is None:
        logger.info("Pillow has no AVIF here: AVIF rows left out")
    else:
        rows += [row(f"avif q{q}", imgs, lambda x, q=q: avif[0](x, q), avif[1], len(files)) for q in AVIF_QUALITIES]
    if args.json_out:
        out = {
            "command": "python scripts/measure_pack_codecs.py --faces FACES128"
            + ("" if args.every == 30 else f" --every {args.every}"),
            "faces": len(imgs),
            "train_faces": len(files),
            "pack_qualities": list(QUALITIES),
            "rows": rows,
        }
        Path(args.json_out).write_text(json.dumps(out, indent=1) + "\n")
        logger.info("wrote %s", args.json_out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
