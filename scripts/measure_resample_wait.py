"""How long a Resample takes from the click when the editor is still upscaling the Result of a big photo.

The photo: the demo face (128 px, eyes about 10 px apart) in the middle of a smooth 4000x3000 photo, so the Result's
Size Auto is x2 (48 MP, within the editor's 50 MP). In the editor model (no Qt, CPU, the shipped FRGD model, 15 steps,
one sample, seed 0): the face is detected, the Result is set to x1 and back to Auto (an upscale job starts), and at
once FRGD's Run is clicked. Measured: seconds from the click until the sample lands, and until the upscale lands,
with the upscale yielding to the user's job (the editor now) and without (``yields`` off: the editor before), each
``--repeats`` times, in turn; and each job alone. Then Run clicked when the upscale is half done (its progress):
``mid resume`` (the editor now: the upscale goes on at its next tile) and ``mid restart`` (its runs share no
:class:`frgd.sr.tiling.TileResume`: the editor before, which made it again from its first tile); seconds from the
upscale's start.

    python scripts/measure_resample_wait.py --out docs/results/resample_wait.json
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

logger = logging.getLogger("measure_resample_wait")
DEMO = Path(__file__).resolve().parents[1] / "resources/frgd_resources/demo/astronaut_lowres.jpg"


def smooth_photo(size: tuple[int, int]) -> np.ndarray:
    """A seeded smooth ``size`` (W, H) photo, ``(H, W, 3)`` uint8: 6x8 random colours resized bicubically."""
    import cv2

    w, h = size
    coarse = np.random.default_rng(0).integers(40, 200, (6, 8, 3)).astype(np.float32)
    return np.round(cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)).clip(0, 255).astype(np.uint8)


def big_photo(path: Path, size: tuple[int, int]) -> Path:
    """The demo face pasted in the middle of a :func:`smooth_photo` of ``size`` (W, H); returns ``path``."""
    from frgd.io import load_rgb, save_image

    face = load_rgb(DEMO)
    w, h = size
    photo = smooth_photo(size)
    y, x = (h - face.shape[0]) // 2, (w - face.shape[1]) // 2
    photo[y : y + face.shape[0], x : x + face.shape[1]] = face
    return save_image(path, photo)


def until(cond, timeout: float, pump) -> float:
    """Pump events until ``cond()``; the seconds it took (``inf`` on timeout)."""
    t0 = time.perf_counter()
    while not cond():
        if time.perf_counter() - t0 > timeout:
            return float("inf")
        pump()
        time.sleep(0.005)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="4000x3000", help="photo size WxH")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    from frgd_studio.model import backend
    from frgd_studio.model import jobs as jobs_module
    from frgd_studio.model.editor import EditorModel
    from frgd_studio.model.settings import RESULT_SCALE_AUTO, Settings

    w, h = (int(v) for v in args.size.lower().split("x"))
    tmp = Path(tempfile.mkdtemp(prefix="frgd-resample-wait-"))
    settings = Settings(tmp / "settings.json")
    settings.set("device", "cpu")
    m = EditorModel(settings)
    for key, value in (("steps", 15), ("samples", 1), ("seed", 0), ("lock_seed", True)):
        m.frgd.set_param(key, value)
    m.open_photo(big_photo(tmp / "photo.png", (w, h)))
    for _ in range(3):
        m.jobs.wait(900)
    doc = m.doc
    if len(doc.faces) != 1:
        raise SystemExit(f"expected the demo face, found {len(doc.faces)} faces")
    pump = m.jobs.pump
    real_submit = jobs_module.JobQueue.submit
    real_upscale = backend.upscaled_background

    def run(mode: str) -> dict:
        """One click; ``mode``: ``yield``, ``no-yield`` (upscale in flight), ``resample alone``, ``upscale alone``,
        ``mid resume``, ``mid restart`` (the click when the upscale is half done)."""
        m.set_result_scale(1)
        m.jobs.wait(900)
        doc._drop_upscaled()  # the document keeps the last upscale: make it again each time
        n = len(doc.face().samples)
        row: dict = {"mode": mode}
        if mode == "no-yield":
            jobs_module.JobQueue.submit = lambda self, *a, **k: real_submit(self, *a, **{**k, "yields": False})
        if mode == "mid restart":
            backend.upscaled_background = lambda *a: real_upscale(*a[:5])  # no TileResume
        try:
            t0 = time.perf_counter()
            if mode != "resample alone":
                m.set_result_scale(RESULT_SCALE_AUTO)
            if mode.startswith("mid"):
                job = m._upscale_job
                half = lambda: (p := job.last_progress) is not None and p.done * 2 >= p.total  # noqa: E731
                until(half, 1800, pump)
                row["click_s"] = round(time.perf_counter() - t0, 2)
            if mode != "upscale alone":
                m.frgd.run()
            sample = lambda: len(doc.face().samples) > n  # noqa: E731
            if mode != "upscale alone":
                until(sample, 1800, pump)
                row["resample_s"] = round(time.perf_counter() - t0, 2)
            if mode != "resample alone":
                until(doc.upscale_current, 1800, pump)
                row["upscale_s"] = round(time.perf_counter() - t0, 2)
            if "resample_s" in row and "upscale_s" in row:
                row["upscale_after_resample_s"] = round(row["upscale_s"] - row["resample_s"], 2)
            m.jobs.wait(900)
        finally:
            jobs_module.JobQueue.submit = real_submit
            backend.upscaled_background = real_upscale
        row["result_scale"] = doc.result_scale
        logger.info("%s", row)
        return row

    rows = []
    for mode in ("resample alone", "upscale alone"):
        rows.append(run(mode))
    modes = ("yield", "no-yield", "mid resume", "mid restart")
    for _ in range(args.repeats):
        for mode in modes:
            rows.append(run(mode))
    summary = {}
    for mode in modes:
        got = [r for r in rows if r["mode"] == mode]
        keys = ("click_s",) * mode.startswith("mid") + ("resample_s", "upscale_s", "upscale_after_resample_s")
        summary[mode] = {k: statistics.median(r[k] for r in got) for k in keys}
    m.shutdown()
    command = "python scripts/measure_resample_wait.py " + " ".join(sys.argv[1:] if argv is None else argv)
    data = {"command": command, "photo_wh": [w, h], "device": f"CPU ({torch.get_num_threads()} threads)",
            "rows": rows, "median": summary}  # fmt: skip
    Path(args.out).write_text(json.dumps(data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
