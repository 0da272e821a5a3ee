"""How much of a photo's fine detail a restored face keeps when it is larger in the photo than its restored crop.

Every photo of the given folders goes through ``frgd.restore.FacePipeline`` with the installed FRGD model (seed 0,
no reference, default settings, auto scale); the restored faces are then pasted twice over the same background, with
and without ``keep_detail``. For each face shown larger than its crop (native scale x photo scale > 1), the detail
ratio (:func:`frgd.metrics.detail.detail_ratio`: luma band energy at 1/8-1/2 cycles/px of the result over the
background's, in the face's box) of both pastes is written.

Usage (about 2 CPU minutes for the 15 photos of the shared real set)::

    python scripts/measure_paste_detail.py ../shared/real/old_photos/old ../shared/real/old_photos/old_w_scratch \\
        ../shared/real/gfpgan_inputs/whole_imgs --out docs/results/paste_detail.json
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from frgd.errors import InputError
from frgd.io import load_rgb
from frgd.metrics.detail import detail_ratio
from frgd.restore import FacePipeline, FRGDRestorer, load_frgd_pipeline, paste_faces

logger = logging.getLogger("measure_paste_detail")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", type=Path, nargs="+", help="folders of photos")
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t0 = time.perf_counter()
    pipe = FacePipeline(FRGDRestorer(load_frgd_pipeline(device="cpu")))
    rows = []
    for folder in args.folders:
        for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            try:
                out = pipe(load_rgb(path), seeds=[0], require_faces=True)
            except InputError as e:
                logger.info("%s: %s", path.name, e)
                continue
            pastes = [(r.crop, r.samples[0].image, r.samples[0].paste_mask) for r in out.faces]
            images = {
                keep: paste_faces(out.background, pastes, out.scale, pipe.feather, keep_detail=keep)
                for keep in (False, True)
            }
            for r in out.faces:
                magnification = r.crop.native_scale * out.scale
                if magnification <= 1.0:
                    continue
                x0, y0, x1, y1 = (int(round(v * out.scale)) for v in r.face.box)
                x0, y0 = max(x0, 0), max(y0, 0)
                bg = out.background[y0:y1, x0:x1]
                rows.append({
                    "photo": f"{folder.name}/{path.name}", "face": r.number, "magnification": round(magnification, 3),
                    "detail_plain": round(detail_ratio(images[False][y0:y1, x0:x1], bg), 4),
                    "detail_kept": round(detail_ratio(images[True][y0:y1, x0:x1], bg), 4),
                })  # fmt: skip
                logger.info("%s", rows[-1])
    plain = [r["detail_plain"] for r in rows]
    kept = [r["detail_kept"] for r in rows]
    result = {
        "command": "python scripts/measure_paste_detail.py",
        "folders": [f"{p.parent.name}/{p.name}" for p in args.folders],
        "faces": len(rows),
        "median_detail_plain": round(float(np.median(plain)), 4) if rows else None,
        "median_detail_kept": round(float(np.median(kept)), 4) if rows else None,
        "faces_with_more_detail": int(sum(k > p for k, p in zip(kept, plain))),
        "rows": rows,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    logger.info(
        "wrote %s: median detail, plain %s, kept %s",
        args.out,
        result["median_detail_plain"],
        result["median_detail_kept"],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
