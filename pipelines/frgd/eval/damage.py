"""``frgd eval damage``: how well the damage detector finds damage, and how little it marks that is not damage.

Four parts, all at the detector's own threshold unless said otherwise:

1. **synthetic**: damage drawn by :mod:`frgd.scratch.synth` (seed ``seed``, not the training's validation seed) on
   crops of scenes the detector never saw (``photos``: Set5 and Set14) and of faces128 val faces it never saw
   (other faces than its validation's), quantised to 8 bits as a photo is: pixel precision, recall, F1 and IoU for
   the scenes and the faces apart and together, and the same at a few other thresholds. Drawn without creases and
   flakes (and glasses), so the examples are those of every earlier evaluation; **creases** and **flaked cracks**
   (seeds ``seed + 3`` and ``seed + 4``, only those marks on the same crops) are scored apart, as ``kinds``;
2. **clean faces**: faces128 val faces upscaled twice (256 px, a portrait's face) and aged like an old print but
   never damaged: the share of pixels marked, overall and inside the eye and mouth boxes of the alignment template
   (where a false mark costs most: the restorers ignore the photo there);
3. **glasses**: the same faces wearing glasses (:func:`frgd.scratch.synth.draw_glasses`, seed ``seed + 2``), aged
   and scanned but never damaged: the share of the frame's pixels marked (a restorer fills marked pixels, i.e. takes
   the glasses off), of all pixels, and the faces with a mark on their frame;
4. **real** (optional): the share marked on each real photo of ``real`` folders (no ground truth; for old photos
   without scratches every mark is a false alarm or real dust).

Time: seconds per megapixel of the whole-photo inference on this machine.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

THRESHOLDS = (0.3, 0.5, 0.7)
"""Other thresholds the synthetic part reports."""
PORTRAIT = 256
"""Side of the clean and glasses parts' faces (px): a faces128 face upscaled twice."""
EYE_BOX = (24, 16)
"""Width and height (px at 256) of the box around each template eye; the mouth box spans the two mouth corners
widened by 8 px each side and 16 px high."""


def _prob_of(net: Any, images: np.ndarray) -> tuple[np.ndarray, float]:
    """The detector's probabilities ``(N, H, W)`` of 8-bit ``images`` ``(N, H, W, 3)`` through the product's
    whole-photo path, and the seconds it took."""
    from ..scratch.detect import damage_probability

    t0 = time.perf_counter()
    probs = np.stack([damage_probability(net, im)[0] for im in images])
    return probs, time.perf_counter() - t0


def portrait_face(face: np.ndarray, size: int | None = None) -> np.ndarray:
    """An aligned face ``(S, S, 3)`` uint8 as a portrait's face: upscaled bicubically to ``size`` (default
    :data:`PORTRAIT`), float32 in [0, 1] (the clean and glasses parts, ``scripts/measure_glasses_marks.py``)."""
    import cv2

    size = PORTRAIT if size is None else size
    return np.clip(cv2.resize(face, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255.0, 0, 1)


def _face_boxes(size: int) -> list[tuple[int, int, int, int]]:
    """``(y0, y1, x0, x1)`` of the two eye boxes and the mouth box of the alignment template at ``size``."""
    from ..faces.align import template

    t = template(size)
    (w, h) = EYE_BOX
    boxes = [(int(y - h / 2), int(y + h / 2), int(x - w / 2), int(x + w / 2)) for x, y in t[:2]]
    my = float(t[3:, 1].mean())
    boxes.append((int(my - 8), int(my + 8), int(t[3, 0] - 8), int(t[4, 0] + 8)))
    return boxes


def evaluate_damage(
    faces_root: str | Path,
    photos: list[str],
    model_dir: str | Path | None = None,
    n: int = 64,
    seed: int = 2026,
    real: list[str] | None = None,
) -> dict[str, Any]:
    """The four parts of the module's docstring as a JSON-ready dict."""
    import torch

    from ..diffusion.training.train_prior import load_split_faces
    from ..io import load_rgb, to_uint8
    from ..scratch.data import IMAGE_SUFFIXES, read_photos, template_eyes, val_set
    from ..scratch.detect import damage_probability, load_detector, mask_scores
    from ..scratch.synth import VISIBLE, DamageConfig, damage_photo, draw_glasses

    net = load_detector(model_dir)
    thr = float(net.threshold)
    faces = load_split_faces(faces_root, "val")[0]
    step = max(1, len(faces) // n)
    eval_faces = faces[step // 2 :: step][:n]  # between the validation's faces (faces[::36])
    scenes = read_photos(photos)
    cfg = DamageConfig(glasses_prob=0.0, crease_prob=0.0, flake_prob=0.0)
    x, m = val_set(eval_faces, scenes, n=n, seed=seed, cfg=cfg)
    images = to_uint8(x.numpy().transpose(0, 2, 3, 1))
    truth = m.numpy()[:, 0]
    prob, secs = _prob_of(net, images)
    half = len(prob) // 2
    synthetic = {
        "examples": {"scenes": half, "faces": len(prob) - half, "size": int(images.shape[1]), "seed": seed},
        "damaged_share": round(float(truth.mean()), 5),
        "all": mask_scores(prob, truth, thr),
        "scenes": mask_scores(prob[:half], truth[:half], thr),
        "faces": mask_scores(prob[half:], truth[half:], thr),
        "at_thresholds": {f"{t:g}": mask_scores(prob, truth, t) for t in THRESHOLDS},
    }
    mp_s = images.shape[1] * images.shape[2] * len(images) / 1e6 / secs
    only = {"glasses_prob": 0.0, "clean_prob": 0.0, "cracks": (0.0, 0.0), "scratches": (0.0, 0.0), "spots_prob": 0.0,
            "tear_prob": 0.0, "crease_prob": 0.0, "flake_prob": 0.0}  # fmt: skip
    kinds = {}
    for k, (kind, extra) in enumerate((("creases", {"crease_prob": 1.0}),
                                       ("flaked_cracks", {"cracks": (1.0, 2.0), "flake_prob": 1.0}))):  # fmt: skip
        kx, km = val_set(eval_faces, scenes, n=n, seed=seed + 3 + k, cfg=DamageConfig(**{**only, **extra}))
        kimages, ktruth = to_uint8(kx.numpy().transpose(0, 2, 3, 1)), km.numpy()[:, 0]
        kprob = _prob_of(net, kimages)[0]
        kinds[kind] = {"damaged_share": round(float(ktruth.mean()), 5), "at_threshold": mask_scores(kprob, ktruth, thr),
                       "at_0.5": mask_scores(kprob, ktruth, 0.5)}  # fmt: skip
    synthetic["kinds"] = kinds

    rng = np.random.default_rng(seed + 1)
    clean_cfg = DamageConfig(clean_prob=1.0)
    portraits = [portrait_face(f) for f in eval_faces]
    aged = [to_uint8(damage_photo(up, rng, clean_cfg)[0]) for up in portraits]
    cprob, _ = _prob_of(net, np.stack(aged))
    marked = cprob > thr
    boxes = _face_boxes(PORTRAIT)
    in_boxes = np.concatenate([marked[:, y0:y1, x0:x1].reshape(len(marked), -1) for y0, y1, x0, x1 in boxes], 1)
    clean = {
        "faces": len(aged),
        "size": PORTRAIT,
        "marked": round(float(marked.mean()), 5),
        "marked_eyes_mouth": round(float(in_boxes.mean()), 5),
        "faces_with_eye_or_mouth_marks": int(in_boxes.any(axis=1).sum()),
        "faces_with_any_marks": int(marked.reshape(len(marked), -1).any(axis=1).sum()),
    }

    rng = np.random.default_rng(seed + 2)
    worn, frames = [], []
    for up in portraits:
        g = draw_glasses(up, template_eyes(PORTRAIT), rng)
        frames.append(np.abs(g - up).max(axis=2) >= VISIBLE)
        worn.append(to_uint8(damage_photo(g, rng, clean_cfg)[0]))
    gprob, _ = _prob_of(net, np.stack(worn))
    gmarked, frame = gprob > thr, np.stack(frames)
    glasses = {
        "faces": len(worn),
        "size": PORTRAIT,
        "frame_share": round(float(frame.mean()), 5),
        "frame_marked": round(float(gmarked[frame].mean()), 5),
        "marked": round(float(gmarked.mean()), 5),
        "faces_with_frame_marks": int((gmarked & frame).reshape(len(worn), -1).any(axis=1).sum()),
        "frame_marked_at_0.5": round(float((gprob > 0.5)[frame].mean()), 5),
    }

    real_rows = []
    for folder in real or []:
        for p in sorted(Path(folder).iterdir()):
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            img = load_rgb(p)
            img = to_uint8(img)
            t0 = time.perf_counter()
            pr, _scale = damage_probability(net, img)
            real_rows.append({"image": f"{Path(folder).name}/{p.name}", "size": [img.shape[1], img.shape[0]],
                              "marked": round(float((pr > thr).mean()), 5),
                              "seconds": round(time.perf_counter() - t0, 2)})  # fmt: skip
    torch_threads = torch.get_num_threads()
    return {
        "model": str(model_dir) if model_dir else "frgd-damage (installed)",
        "threshold": thr,
        "synthetic": synthetic,
        "clean_faces": clean,
        "glasses": glasses,
        "real": real_rows,
        "megapixels_per_second": round(mp_s, 3),
        "torch_threads": torch_threads,
    }


__all__ = ["EYE_BOX", "PORTRAIT", "THRESHOLDS", "evaluate_damage", "portrait_face"]
