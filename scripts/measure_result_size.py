"""How much of a restored face survives in the editor's Result: at the photo's size (the Size box at ×1, the editor's
only result before the Size box) and at Size Auto (the photo upscaled until the smallest face maps 1:1).

For every photo: open it in the editor model (no Qt), detect its faces, sample each with FRGD (seed 0, default
slider, 15 steps, the shipped model unless ``--model``), apply the sample, then read each face's 128 crop back out of
the Result (the face's own affine at the Result's scale, bilinear) and compare it with the applied crop inside the
paste's feather (crop pixels 24..104): PSNR in dB, and the fine detail kept (:func:`frgd.metrics.detail.detail_ratio`
of the read-back crop to the applied one: 1 = all of it).

    python scripts/measure_result_size.py resources/frgd_resources/demo/astronaut_lowres.jpg \
        ../shared/real/gfpgan_inputs/whole_imgs --shrink 4 --out docs/results/result_size.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

logger = logging.getLogger("measure_result_size")
INNER = (slice(24, 104), slice(24, 104))


def read_back(result: np.ndarray, inverse: np.ndarray, scale: int) -> np.ndarray:
    """The face's 128 crop frame read out of ``result`` (the photo ``scale`` times upscaled), float32."""
    import cv2

    from frgd.faces.align import compose_affine, resize_affine

    a = compose_affine(resize_affine(scale), inverse)  # crop -> result pixels (pixel centres exact)
    return cv2.warpAffine(result.astype(np.float32), a, (128, 128), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)


def photos(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        out += sorted(q for q in p.iterdir() if q.suffix.lower() in (".png", ".jpg", ".jpeg")) if p.is_dir() else [p]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photos", nargs="+", help="photos or folders")
    ap.add_argument("--model", help="FRGD model folder (default: the shipped frgd-128)")
    ap.add_argument("--shrink", type=int, nargs="*", default=[], metavar="K",
                    help="also measure each photo shrunk K times (area), so its faces are small")  # fmt: skip
    ap.add_argument("--out", required=True, help="JSON file to write")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    os.environ["FRGD_CONFIG_DIR"] = tempfile.mkdtemp(prefix="frgd-measure-")  # the user's settings stay untouched
    import cv2

    from frgd.metrics import psnr
    from frgd.metrics.detail import detail_ratio
    from frgd_studio.model.editor import EditorModel
    from frgd_studio.model.settings import RESULT_SCALE_AUTO, Settings

    settings = Settings()
    settings.set("device", "cpu")
    m = EditorModel(settings)
    if args.model and (problem := m.frgd.set_model_folder(args.model)):
        raise SystemExit(problem)
    for key, value in (("steps", 15), ("samples", 1), ("seed", 0), ("lock_seed", True)):
        m.frgd.set_param(key, value)
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="frgd-measure-photos-"))
    todo = []
    for path in photos(args.photos):
        todo.append((path, path.name))
        for k in args.shrink:
            from frgd.io import load_rgb, save_image

            img = load_rgb(path)
            small = cv2.resize(img, (img.shape[1] // k, img.shape[0] // k), interpolation=cv2.INTER_AREA)
            todo.append((save_image(tmp / f"{path.stem}_shrunk{k}.png", small), f"{path.name} shrunk {k}x"))
    for path, name in todo:
        m.open_photo(path)
        for _ in range(3):
            m.jobs.wait(900)
        doc = m.doc
        for i in range(len(doc.faces)):
            doc.select(i)
            m.frgd.run()
            m.jobs.wait(1800)
            m.apply_sample(0)
        for setting in (1, RESULT_SCALE_AUTO):
            m.set_result_scale(setting)
            m.jobs.wait(900)
            result, scale = doc.composite(), doc.result_scale
            for i, face in enumerate(doc.faces):
                back = np.clip(np.round(read_back(result, face.inverse, scale)), 0, 255).astype(np.uint8)[INNER]
                applied = face.applied[INNER]
                rows.append({
                    "photo": name, "face": i + 1, "size": "auto" if setting == RESULT_SCALE_AUTO else "x1",
                    "scale": scale, "result_hw": list(result.shape[:2]),
                    "face_px_per_crop_px": round(1.0 / face.crop_scale(), 3),
                    "psnr_db": round(psnr(back.astype(np.float32), applied.astype(np.float32)), 2),
                    "detail_kept": round(detail_ratio(back, applied), 3),
                })  # fmt: skip
                logger.info("%s", rows[-1])
        if m.errors:
            logger.warning("errors: %s", m.errors)
    m.shutdown()
    command = "python scripts/measure_result_size.py " + " ".join(sys.argv[1:] if argv is None else argv)
    Path(args.out).write_text(json.dumps({"command": command, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
