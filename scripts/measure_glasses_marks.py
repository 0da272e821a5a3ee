"""Measure how much of real glasses the damage detector marks (a marked frame is filled in by the restorers: the
glasses come off).

The faces: faces128 val faces that wear clear glasses (:data:`GLASSES_FACES`, picked by eye from the first 900 val
faces: 21 faces of 7 people, one of them 9 times; none was ever trained on), upscaled to 256 px as `frgd eval
damage`'s clean faces are, each as it is and aged like an old print (grey or sepia, faded, scanned: seeded), through
the product's whole-photo path. Written per model: the share of pixels marked in the glasses band (the template's
eyes +-0.5 eye distances high, 0.8 eye distances beyond each eye: the rims and the bridge), over all faces and per
face, and the faces with any mark there.

Usage (under a minute)::

    python scripts/measure_glasses_marks.py --faces ../shared/data/faces128 \\
        --model before=DIR --model after=resources/frgd_resources/weights/frgd-damage \\
        --out docs/results/glasses_marks.json
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

logger = logging.getLogger("measure_glasses_marks")

GLASSES_FACES = (
    "celeba_aligned_celeba-5545_0002.jpg", "celeba_aligned_celeba-5545_0011.jpg",
    "celeba_aligned_celeba-5545_0012.jpg", "celeba_aligned_celeba-5545_0026.jpg", "celeba_wild_celeba-7255_0001.jpg",
    "celeba_wild_celeba-7255_0013.jpg", "celeba_wild_celeba-7255_0020.jpg", "celeba_wild_celeba-7268_0004.jpg",
    "celeba_wild_celeba-7268_0005.jpg", "celeba_wild_celeba-7268_0007.jpg", "celeba_wild_celeba-7268_0011.jpg",
    "celeba_wild_celeba-7268_0012.jpg", "celeba_wild_celeba-7268_0013.jpg", "celeba_wild_celeba-7268_0015.jpg",
    "celeba_wild_celeba-7268_0016.jpg", "celeba_wild_celeba-7361_0018.jpg", "celeba_wild_celeba-7365_0007.jpg",
    "celeba_wild_celeba-7365_0008.jpg", "celeba_wild_celeba-7365_0009.jpg", "celeba_wild_celeba-7365_0010.jpg",
    "celeba_wild_celeba-7370_0011.jpg",
)  # fmt: skip
"""faces128 ``val/`` files whose person wears clear glasses (no sunglasses)."""


def band(size: int) -> tuple[slice, slice]:
    """Rows and columns of the glasses band of an aligned ``size`` px face."""
    from frgd.scratch.data import template_eyes

    eyes = template_eyes(size)
    d = float(np.linalg.norm(eyes[1] - eyes[0]))
    y = float(eyes[:, 1].mean())
    return slice(int(y - 0.5 * d), int(y + 0.5 * d)), slice(int(eyes[0, 0] - 0.8 * d), int(eyes[1, 0] + 0.8 * d))


def main(argv: list[str] | None = None) -> int:
    from frgd.diffusion.training.data import read_image
    from frgd.eval.damage import PORTRAIT, portrait_face
    from frgd.io import to_uint8
    from frgd.scratch.detect import damage_probability, load_detector
    from frgd.scratch.synth import DamageConfig, damage_photo

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--faces", required=True, help="faces128 folder")
    p.add_argument("--model", action="append", required=True, metavar="NAME=DIR", help="a detector folder, named")
    p.add_argument("--seed", type=int, default=7, help="seed of the ageing (default 7)")
    p.add_argument("--out", required=True, help="JSON file to write")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    t0 = time.perf_counter()
    faces = [portrait_face(read_image(Path(args.faces) / "val" / name)) for name in GLASSES_FACES]
    rng = np.random.default_rng(args.seed)
    aged = [damage_photo(f, rng, DamageConfig(clean_prob=1.0))[0] for f in faces]
    rows, cols = band(PORTRAIT)
    out = {"command": "python scripts/measure_glasses_marks.py " + " ".join(argv or []),
           "faces": list(GLASSES_FACES), "size": PORTRAIT, "band": [rows.start, rows.stop, cols.start, cols.stop],
           "seed": args.seed, "models": {}}  # fmt: skip
    for spec in args.model:
        name, _, folder = spec.partition("=")
        net = load_detector(folder)
        res = {"threshold": float(net.threshold)}
        for kind, images in (("as_is", faces), ("aged", aged)):
            shares = []
            for im in images:
                prob, _ = damage_probability(net, to_uint8(im))
                shares.append(float((prob[rows, cols] > net.threshold).mean()))
            res[kind] = {"band_marked": round(float(np.mean(shares)), 5),
                         "faces_with_band_marks": int(sum(s > 0 for s in shares)),
                         "per_face": [round(s, 5) for s in shares]}  # fmt: skip
        out["models"][name] = res
        logger.info("%s: as is %.3f%% of the band marked (%d of %d faces), aged %.3f%% (%d)", name,
                    100 * res["as_is"]["band_marked"], res["as_is"]["faces_with_band_marks"], len(faces),
                    100 * res["aged"]["band_marked"], res["aged"]["faces_with_band_marks"])  # fmt: skip
    out["seconds"] = round(time.perf_counter() - t0, 1)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(__import__("sys").argv[1:]))
